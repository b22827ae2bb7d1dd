"""The pipeline as the chat sees it, and how the chat's queue runs its calls."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

from qa import followup
from qa.config import Config
from qa.types import Answer, Document, DocumentInfo, FileResult

# Gradio queue: questions run side by side; index writes (add, remove) go one at a time.
ASK_CONCURRENCY = 8
WRITES = {"concurrency_limit": 1, "concurrency_id": "index-writes"}


class PipelineLike(Protocol):
    """What the app needs from `qa.pipeline.Pipeline`; lets tests use a small fake."""

    config: Config

    def ensure_seeded(self) -> None: ...

    def add(
        self, paths: Sequence[Path], progress: Callable[[int, int, str], None] | None = None
    ) -> list[FileResult]: ...

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        doc_ids: Collection[str] | None = None,
        strict: bool | None = None,
        context: followup.Context | None = None,
    ) -> Answer: ...

    def context_of(
        self, questions: Sequence[str], doc_ids: Collection[str] | None = None, strict: bool | None = None
    ) -> followup.Context: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document(self, doc_id: str) -> Document: ...

    def remove(self, doc_id_or_path: str) -> list[DocumentInfo]: ...
