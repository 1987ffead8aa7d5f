"""The evidence bundle's chain-of-custody report: a PDF people read (fpdf2), §24.6.

Names come from the case's member list and the documents' decrypted metadata; this runs on
counsel's machine only and nothing of it reaches the server or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
# Scripts DejaVu lacks (Chinese, Thai), where Debian's fonts are installed.
FALLBACK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/tlwg/Garuda.ttf"),
)
ACTIONS = {
    "upload": "uploaded",
    "grant": "shared",
    "revoke": "stopped sharing",
    "expiry": "share expired",
    "delete": "deleted",
}


@dataclass(frozen=True)
class ReportDocument:
    """What the report says of one document."""

    document_id: str
    name: str
    doc_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: str
    key_version: int
    file: str
    entries: list[dict[str, Any]]


def describe(entry: dict[str, Any], names: dict[str, str], subject: str | None) -> str:
    """One audit entry in words: who did what (and with whom)."""
    kind = str(entry["kind"])
    actor = names.get(entry.get("actor_id") or "", entry.get("actor_id") or "the server")
    reader = names.get(subject, subject) if subject else "a reader"
    if kind == "download":
        purpose = str((entry.get("detail") or {}).get("purpose"))
        said = {"view": "viewed it in the app", "save": "saved a copy"}
        return f"{actor} {said.get(purpose, 'opened it')}"
    if kind in ("grant", "revoke"):
        return f"{actor} {ACTIONS[kind]} with {reader}"
    if kind == "expiry":
        return f"the share with {reader} expired"
    return f"{actor} {ACTIONS.get(kind, kind)}"


def when(ms: int) -> str:
    """A time in the chain, in UTC, to the second."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Pdf(FPDF):
    def __init__(self) -> None:
        super().__init__(format="A4")
        self.set_auto_page_break(auto=True, margin=15)
        regular = next((d / "DejaVuSans.ttf" for d in FONT_DIRS if d.is_dir()), None)
        self.unicode = regular is not None and regular.is_file()
        if self.unicode and regular is not None:
            self.add_font("body", "", str(regular))
            bold = regular.with_name("DejaVuSans-Bold.ttf")
            self.add_font("body", "B", str(bold if bold.is_file() else regular))
            mono = regular.with_name("DejaVuSansMono.ttf")
            self.add_font("mono", "", str(mono if mono.is_file() else regular))
        if self.unicode:
            fallbacks = []
            for n, path in enumerate(FALLBACK_FONTS):
                if path.is_file():
                    self.add_font(f"fallback{n}", "", str(path))
                    self.add_font(f"fallback{n}", "B", str(path))
                    fallbacks.append(f"fallback{n}")
            self.set_fallback_fonts(fallbacks)
            self.set_text_shaping(True)  # Arabic, Thai and other scripts joined and ordered
        self.body_font = "body" if self.unicode else "helvetica"
        self.mono_font = "mono" if self.unicode else "courier"

    def clean(self, value: str) -> str:
        """Text the chosen font can draw (core fonts: Latin-1 only)."""
        if self.unicode:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    def line_of(self, value: str, *, size: float = 10, style: str = "", mono: bool = False) -> None:
        self.set_font(self.mono_font if mono else self.body_font, style if not mono else "", size)
        self.multi_cell(0, size * 0.5, self.clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.body_font, "", 8)
        self.cell(0, 6, f"Haven chain-of-custody report, page {self.page_no()}", align="C")


def write_report(
    path: Path,
    *,
    case_id: str,
    server: str,
    exporter: str,
    exported_at: str,
    content: str,
    log_size: int,
    witnesses: int,
    documents: list[ReportDocument],
    names: dict[str, str],
    subjects: dict[int, str],
) -> None:
    """Write the PDF: each file, its SHA-256, and who uploaded, shared and opened it, when."""
    pdf = _Pdf()
    pdf.add_page()
    pdf.line_of("Chain-of-custody report", size=16, style="B")
    pdf.ln(2)
    pdf.line_of(f"Case {case_id} on {server}")
    pdf.line_of(f"Exported by {exporter} on {exported_at}; files as {content}.")
    pdf.line_of(
        f"Keys checked against the key log at size {log_size}"
        + (f", cosigned by {witnesses} witness(es)." if witnesses else " (no witnesses set).")
    )
    pdf.line_of(
        "Every statement below can be checked without Haven: open verify.html from this "
        "bundle in a browser, or run `haven verify` on it. The manifest lists the SHA-256 "
        "of this report too."
    )
    for doc in documents:
        pdf.ln(4)
        pdf.line_of(doc.name, size=12, style="B")
        pdf.line_of(f"File in the bundle: {doc.file}")
        pdf.line_of(f"Type: {doc.doc_type}; size: {doc.size} bytes; document id {doc.document_id}")
        pdf.line_of("SHA-256 of the file:")
        pdf.line_of(doc.sha256, mono=True, size=9)
        pdf.line_of(
            f"Uploaded by {doc.uploaded_by} at {doc.uploaded_at}, "
            f"signed with their key version {doc.key_version}."
        )
        pdf.line_of("History (from the audit chain, each entry under a signed checkpoint):")
        for entry in doc.entries:
            subject = subjects.get(int(entry["seq"]))
            pdf.line_of(
                f"  {when(int(entry['created_ms']))}  {describe(entry, names, subject)}"
                f"  (entry {entry['seq']})",
                size=9,
            )
    pdf.output(str(path))
