"""One inference runtime for both models: ONNX Runtime sessions over int8 exports, `tokenizers`.

At ask time neither torch nor transformers is imported: the encoder and the answer model run as
int8 ONNX graphs, tokenised by the `tokenizers` library from the model folder's tokenizer.json
(the same fast tokenizer transformers wraps). torch is needed once per set of weights, to export
them (`export`): the int8 file is cached under ~/.cache/briefqa/onnx (`QA_CACHE_DIR`), named by
the weights files (path, size, modification time) and the libraries' versions, so a retrained
model or a new onnxruntime re-exports on first use and nothing stale is ever read. Nothing is downloaded: the graphs come from weights on
disk (the bundled sentence model's package, our answer model in qa/models/span).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from qa.config import cache_root

LIBRARIES = ("onnxruntime", "onnx", "torch")  # an export depends on these versions too


def cache_dir() -> Path:
    return cache_root() / "onnx"


def export_key(name: str, files: Iterable[Path]) -> str:
    """Names an export: changes when the weights files (path, size, modification time: no need to
    read 90 MB at every start) or the exporting libraries change."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for path in files:
        if path.is_file():
            st = path.stat()
            parts.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    for lib in LIBRARIES:
        try:
            parts.append(f"{lib}:{version(lib)}")
        except PackageNotFoundError:
            pass
    return f"{name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}"


def export(key: str, model_factory: Callable[[], object], inputs: list[str], outputs: list[str]) -> Path:
    """The int8 ONNX file `key` in the cache, exported from the transformers model
    `model_factory()` builds (called with the int64 [batch, tokens] tensors `inputs` by name; the
    graph returns the fields `outputs` of its output) and dynamically quantised, once, under a
    file lock; the cached file after."""
    folder = cache_dir() / key
    target = folder / "model.int8.onnx"
    if target.is_file():
        return target
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")), warnings.catch_warnings():
        if target.is_file():  # another process exported it while we waited
            return target
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = folder / f".model.fp32.{os.getpid()}.onnx"
        tmp = folder / f".model.int8.{os.getpid()}.onnx"
        sample = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in inputs)
        axes = {0: "batch", 1: "tokens"}
        root_logger = logging.getLogger()
        level = root_logger.level
        try:
            # The exporter's tracer warnings and onnxruntime's "consider pre-processing" note are
            # expected for these models; they would only alarm a user on first use.
            warnings.simplefilter("ignore")
            root_logger.setLevel(logging.ERROR)
            with torch.no_grad():
                torch.onnx.export(
                    _positional(model_factory(), inputs, outputs).eval(),
                    sample,
                    str(fp32),
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes={name: axes for name in [*inputs, *outputs]},
                    opset_version=17,
                    dynamo=False,
                )
            quantize_dynamic(str(fp32), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
            os.replace(tmp, target)
        finally:
            root_logger.setLevel(level)
            for extra in folder.glob(".model.*"):
                extra.unlink(missing_ok=True)
    return target


def _positional(inner, inputs: list[str], outputs: list[str]):
    """The model with positional inputs and a tuple of tensors out: what the legacy TorchScript
    exporter traces cleanly."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            out = self.inner(**dict(zip(inputs, tensors)))
            return tuple(getattr(out, name) for name in outputs)

    return Positional()


def default_threads() -> int:
    """Cores a model may use: all of them, up to 4."""
    return max(1, min(4, os.cpu_count() or 1))


_pool = threading.Lock()
_pool_made = False


def session(onnx_file: Path, own_thread: bool = False):
    """An onnxruntime CPU session: with `own_thread`, run on the caller's thread alone (a question's
    embedding: robust when the cores are shared); otherwise in the process's one intra-op thread
    pool of `default_threads()`, shared by every such session, whose threads spin-wait between
    operators. A question runs the answer model and the base model one after another: in one
    shared spinning pool they took 42.5 ms p50, in a non-spinning pool each 51.2 ms, and in a
    spinning pool each 76 ms, as the first's threads spun against the second's (2 cores,
    2026-12-05, the same 80 questions). The spinning costs CPU: a question asked alone took 0.12 s
    of it against 0.064 s, and 10 chat clients at once got 12% fewer answers a second
    (docs/performance.md)."""
    import onnxruntime as ort

    global _pool_made
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if own_thread:
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    else:
        with _pool:
            if not _pool_made:  # sized once per process, before its first shared session
                from onnxruntime.capi import _pybind_state

                _pybind_state.set_global_thread_pool_sizes(default_threads(), 1)
                _pool_made = True
        options.use_per_session_threads = False
    return ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])


def padded_inputs(encodings: Sequence, rows: Sequence[int], token_types: bool) -> dict:
    """A BERT graph's int64 inputs for `encodings[rows]`, each padded with 0 to the longest and
    masked: input_ids, attention_mask, token_type_ids (each encoding's `type_ids` when
    `token_types`, else zeros). Encodings are `tokenizers` encodings or alike (`.ids`)."""
    import numpy as np

    width = max(len(encodings[i].ids) for i in rows)
    feed = {name: np.zeros((len(rows), width), np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
    for r, i in enumerate(rows):
        e = encodings[i]
        feed["input_ids"][r, : len(e.ids)] = e.ids
        feed["attention_mask"][r, : len(e.ids)] = 1
        if token_types:
            feed["token_type_ids"][r, : len(e.ids)] = e.type_ids
    return feed


def fast_tokenizer(model_dir: Path, max_tokens: int | None, strategy: str = "longest_first"):
    """The folder's tokenizer.json as a `tokenizers.Tokenizer`, unpadded: truncated to
    `max_tokens` (`strategy` "only_second" cuts the passage of a pair, never the question; such a
    tokenizer refuses single texts longer than that), or not at all (None)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    if max_tokens is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_tokens, strategy=strategy)
    tokenizer.no_padding()
    return tokenizer
