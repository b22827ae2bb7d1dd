"""Optional learned short answers: a transformers question-answering model picks the span.

Off by default (the rules in `qa.read` need no model). Set `QA_READER_MODEL` to a local folder
(or a hub name, for users online) holding a model with a question-answering head; it then picks
the short answer inside the quote the reader chose, so the answer is still verbatim and cited.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

MAX_ANSWER_TOKENS = 30


class SpanModel:
    def __init__(self, name: str):
        self.name = name
        self._tokenizer, self._model = _load(name)
        self._lock = threading.Lock()

    def best_span(self, question: str, context: str) -> tuple[int, int] | None:
        """Character offsets of the most likely answer inside `context`, or None."""
        import torch

        encoded = self._tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=384,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping")[0].tolist()
        in_context = np.array([s == 1 for s in encoded.sequence_ids(0)])
        with self._lock, torch.inference_mode():
            out = self._model(**{k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        start_logits = out.start_logits[0].numpy()
        end_logits = out.end_logits[0].numpy()
        start_logits = np.where(in_context, start_logits, -np.inf)
        end_logits = np.where(in_context, end_logits, -np.inf)
        # Best start <= end within the length limit: a (tokens x tokens) band of summed logits.
        scores = start_logits[:, None] + end_logits[None, :]
        n = len(scores)
        band = np.triu(np.ones((n, n), bool)) & ~np.triu(np.ones((n, n), bool), MAX_ANSWER_TOKENS)
        scores = np.where(band, scores, -np.inf)
        if not np.isfinite(scores).any():
            return None
        start_tok, end_tok = np.unravel_index(int(np.argmax(scores)), scores.shape)
        start, end = offsets[start_tok][0], offsets[end_tok][1]
        return (start, end) if end > start else None


@lru_cache(maxsize=2)
def _load(name: str):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if os.path.isdir(name):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForQuestionAnswering.from_pretrained(name)
    model.eval()
    return tokenizer, model
