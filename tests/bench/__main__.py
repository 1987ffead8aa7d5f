"""Run every benchmark module (tests/bench/bench_*.py), or those named on the command line."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from tests import bench
from tests.bench.harness import Services, log


def main(names: list[str]) -> int:
    """Import each bench module and call its run(services)."""
    modules = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if names:
        modules = [m for m in modules if m.removeprefix("bench_") in names]
    services = Services()
    try:
        for name in modules:
            log(f"bench: {name}")
            importlib.import_module(f"tests.bench.{name}").run(services)
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
