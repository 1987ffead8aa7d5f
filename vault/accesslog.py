"""gunicorn's access log without the client's address or user agent on the intake (§20.7)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

# The intake's API and its page: a reporter's address must not reach any log line.
ANONYMOUS_PREFIXES = ("/api/v1/intake/", "/intake")


def is_anonymous_path(path: str) -> bool:
    """Whether a request path belongs to the anonymous intake."""
    return path == "/intake" or path.startswith(ANONYMOUS_PREFIXES)


class HavenLogger(Logger):  # type: ignore[misc]
    """Writes '-' for the address, user agent and referrer of intake requests."""

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> dict[str, Any]:
        """gunicorn's atoms, reduced for the intake."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        if is_anonymous_path(environ.get("PATH_INFO", "")):
            for key in list(atoms):
                # address, user agent, referrer and every request header
                if key in ("h", "a", "f") or key.endswith("}i"):
                    atoms[key] = "-"
        return atoms
