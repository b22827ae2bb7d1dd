"""The app's stylesheet and its two gr.HTML scripts, kept as files in static/ and read once at import."""

from __future__ import annotations

from pathlib import Path

_STATIC = Path(__file__).with_name("static")


def _read(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


CSS = _read("chat.css")
EVIDENCE_JS = _read("evidence.js")  # the evidence panel's js_on_load
VIEWER_JS = _read("viewer.js")  # the document viewer's js_on_load
