"""The contact book: each account's pinned contact keys, stored encrypted (protocol §16)."""
