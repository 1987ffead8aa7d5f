"""Audit events: who uploaded, opened, shared, revoked and deleted which document, and when."""
