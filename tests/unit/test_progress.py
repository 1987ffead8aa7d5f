"""Progress of pull, bundle export and verify: shown on a terminal, silent anywhere else."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios

import pytest

from vault.client.progress import Progress


def test_a_terminal_sees_files_bytes_rate_and_no_name(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    os.set_blocking(leader, False)
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr("sys.stderr", terminal)
        with Progress("bundle", 3 * 1024 * 1024, 2) as progress:
            on_chunk = progress.chunk(3 * 1024 * 1024)
            for index in range(48):
                on_chunk(index)
            progress.file_done()
        terminal.flush()
        shown = os.read(leader, 65536).decode("utf-8", "replace")
    os.close(leader)
    assert "0/2 files" in shown and "1/2 files" in shown and "3.00M/3.00M" in shown
    assert "B/s" in shown  # the rate; the time left shows while it runs


def test_a_pipe_or_log_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = io.StringIO()
    monkeypatch.setattr("sys.stderr", captured)
    with Progress("verify", 1000, 1) as progress:
        progress.advance(1000)
        progress.file_done()
    assert captured.getvalue() == ""
