"""`make bench`: speed and memory, as JSON lines, each beside a baseline from the same run."""
