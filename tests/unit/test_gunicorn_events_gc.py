"""The event tier's worker freezes the loaded app out of garbage collection and collects
young objects less often (vault/gunicorn_events.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import gc
from vault import gunicorn_events

before = gc.get_threshold()
gunicorn_events.post_worker_init(object())
print(gc.get_freeze_count() > 0, gc.get_threshold() == (gunicorn_events.GC_YOUNG, *before[1:]))
"""


def test_the_worker_freezes_the_loaded_app_and_collects_young_objects_less_often() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split()[-2:] == ["True", "True"]
