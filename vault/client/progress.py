"""Progress of long client work (pull, bundle export, verify): files, bytes, rate, time left.

Shown on a terminal only: tqdm with ``disable=None`` stays silent when stderr is not a TTY,
so scripts, pipes and logs get nothing. The bar shows sizes and counts, never file names.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from tqdm import tqdm

from vault.protocol.documents import CHUNK_PLAINTEXT_BYTES


class Progress:
    """One bar over a known number of bytes, with a files-done counter beside it."""

    def __init__(self, label: str, total_bytes: int, total_files: int) -> None:
        self.total_files = total_files
        self.files = 0
        self.bar = tqdm(
            total=total_bytes,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None,
            leave=False,
            dynamic_ncols=True,
        )
        self._show_files()
        self.bar.refresh()

    def _show_files(self) -> None:
        self.bar.set_postfix_str(f"{self.files}/{self.total_files} files", refresh=False)

    def advance(self, size: int) -> None:
        """Count bytes done."""
        self.bar.update(size)

    def chunk(self, size: int) -> Callable[[int], None]:
        """A download's per-chunk callback that counts the plaintext bytes of one file."""
        left = [size]

        def on_chunk(_index: int) -> None:
            step = min(CHUNK_PLAINTEXT_BYTES, left[0])
            left[0] -= step
            self.advance(step)

        return on_chunk

    def file_done(self) -> None:
        """Count one more file done."""
        self.files += 1
        self._show_files()
        self.bar.refresh()

    def close(self) -> None:
        """Take the bar off the terminal."""
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
