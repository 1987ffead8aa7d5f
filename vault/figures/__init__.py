"""Outcome reporting with local differential privacy and released figures (protocol §28)."""
