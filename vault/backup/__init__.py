"""Encrypted backups of the database and the bucket, restore, and the restore drill (§27)."""
