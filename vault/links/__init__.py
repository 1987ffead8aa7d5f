"""Outside links: documents shared with a named recipient who has no account (protocol §23)."""
