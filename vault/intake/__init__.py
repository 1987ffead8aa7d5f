"""Anonymous intake: a report without an account, to the organisation's intake team (§20)."""
