"""The Python client: reference implementation of protocol v1, counsel CLI and test driver."""

from vault.client.api import ApiError, HavenClient
from vault.client.directory import WitnessPolicy

__all__ = ["ApiError", "HavenClient", "WitnessPolicy"]
