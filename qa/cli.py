"""`qa`: the command line. Scripts depend on its output, so `--json` shapes are a contract.

Heavy imports (torch, FAISS, Gradio) happen inside the commands that need them, so `qa list`
answers at once and `qa ask` never loads the web stack.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from qa.config import ABSTENTION_KINDS, Config
from qa.ingest import SUPPORTED_SUFFIXES
from qa.schema import answer_json


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = Config.load(index_dir=args.index, model=args.model, reader_model=args.reader_model, abstention=args.abstention)
    except ValueError as exc:  # a bad QA_* variable
        print(f"qa: {exc}", file=sys.stderr)
        return 2
    try:
        return args.run(args, config)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the index's own errors carry a user-facing message
        from qa.pipeline import StoreIndexError as IndexError

        if isinstance(exc, IndexError):
            print(f"qa: {exc}", file=sys.stderr)
            return 2
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Ask questions of your documents; answers are quoted verbatim with citations.")
    parser.add_argument("--index", type=Path, help="index folder (default: ./index, or $QA_INDEX)")
    parser.add_argument("--model", help="sentence-transformers model name or path (default: bundled all-MiniLM-L6-v2, or $QA_MODEL)")
    parser.add_argument(
        "--reader-model",
        help="answer model: 'bundled' (default), 'none' for the fast mode (no model call), or a "
        "transformers question-answering model path ($QA_READER_MODEL)",
    )
    parser.add_argument(
        "--abstention",
        choices=ABSTENTION_KINDS,
        help="'balanced' (default), or 'strict': answer only at a higher calibrated confidence "
        "($QA_STRICT_MIN_CONFIDENCE), refusing more questions on the documents' topic that they do not "
        "answer, at the cost of more refusals of answerable ones ($QA_ABSTENTION)",
    )
    # Global options may also follow the command (`qa eval Q.jsonl --docs D --index I`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--model", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--reader-model", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--abstention", choices=ABSTENTION_KINDS, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", parents=[common], help=f"add files or folders ({', '.join(SUPPORTED_SUFFIXES)}) to the index")
    add.add_argument("paths", nargs="+", type=Path)
    add.set_defaults(run=_add)

    ask = commands.add_parser("ask", parents=[common], help="ask a question")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--top-k", type=_positive, help="passages to read (default 5)")
    ask.set_defaults(run=_ask)

    chat = commands.add_parser(
        "chat", parents=[common], help="a conversation: questions one per line, follow-ups read in context"
    )
    chat.add_argument("--json", action="store_true", help="one `qa ask --json` object per question, per line")
    chat.add_argument("--top-k", type=_positive, help="passages to read (default 5)")
    chat.set_defaults(run=_chat)

    listing = commands.add_parser("list", parents=[common], help="list the indexed documents")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)

    remove = commands.add_parser("remove", parents=[common], help="remove a document by id, path or file name")
    remove.add_argument("document")
    remove.set_defaults(run=_remove)

    rebuild = commands.add_parser(
        "rebuild", parents=[common], help="re-create the index from its stored texts (damaged index, or --model NAME)"
    )
    rebuild.set_defaults(run=_rebuild)

    check = commands.add_parser("check", parents=[common], help="check the index is complete and consistent")
    check.set_defaults(run=_check)

    evaluation = commands.add_parser("eval", parents=[common], help="measure answer quality on a question set")
    evaluation.add_argument(
        "questions",
        type=Path,
        help='JSONL: {"id", "question", "answers": [...], "doc"}, or dialogues {"id", "turns": [...]} '
        "whose turns' doc paths (relative to the current folder) are the documents",
    )
    evaluation.add_argument("--docs", type=Path, help="folder of the documents the questions are about")
    evaluation.add_argument("--json", action="store_true", help="print one JSON object")
    evaluation.add_argument("--limit", type=int, help="only the first N questions")
    evaluation.add_argument("--out", type=Path, help="write one JSON line per question for error analysis")
    evaluation.set_defaults(run=_eval)

    serve = commands.add_parser("serve", parents=[common], help="serve the browser chat")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 7860)")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without QA_AUTH/QA_AUTH_FILE (prints a warning)",
    )
    serve.set_defaults(run=_serve)
    return parser


def _eval_config(args: argparse.Namespace, config: Config, name: str, documents: str) -> Config:
    """A separate index per evaluated set of `documents` (unless --index or QA_INDEX names one),
    so evaluation never touches the user's own."""
    if args.index is not None or os.environ.get("QA_INDEX"):
        return config
    digest = hashlib.sha256(documents.encode()).hexdigest()[:8]
    return replace(config, index_dir=Path(".cache/eval") / f"{name}-{digest}")


def _write_rows(path: Path | None, rows: list[dict]) -> None:
    """One JSON line per question (or turn) for error analysis, when --out names a file."""
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _eval_dialogues(args: argparse.Namespace, config: Config) -> int:
    """`qa eval` on dialogues: their documents indexed together, each turn asked in context."""
    from qa.evaluate import dialogue_documents, evaluate_dialogues, load_questions, sync_files
    from qa.pipeline import Pipeline

    dialogues = load_questions(args.questions, args.limit)
    paths = dialogue_documents(dialogues)
    missing = {p for p in paths if not Path(p).is_file()}
    if missing:
        print(f"skipping dialogues over missing documents: {', '.join(sorted(missing))}", file=sys.stderr)
        dialogues = [d for d in dialogues if not any(t.get("doc") in missing for t in d["turns"])]
        paths = [p for p in paths if p not in missing]
    pipeline = Pipeline(_eval_config(args, config, "dialogues", "\n".join(str(Path(p).resolve()) for p in paths)))
    sync_files(pipeline, [Path(p) for p in paths])
    summary, rows = evaluate_dialogues(pipeline, dialogues)
    _write_rows(args.out, rows)
    if args.json:
        print(json.dumps(summary))
        return 0
    for key, value in summary.items():
        shown = f"{value['right']} / {value['of']} ({value['share']})" if isinstance(value, dict) else value
        print(f"{key:<28}  {shown}")
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _add(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    from qa.ingest import printable
    from qa.pipeline import Pipeline

    pipeline = Pipeline(config)
    with tqdm(total=0, unit="file", disable=None, file=sys.stderr) as bar:

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.set_postfix_str(name[:40])
            bar.update(done - bar.n)

        results = pipeline.add(args.paths, progress=progress)
    counts = {s: sum(r.status == s for r in results) for s in ("added", "replaced", "unchanged", "refused")}
    for r in results:
        if r.status == "refused":
            print(f"refused {printable(r.path)}: {r.reason}", file=sys.stderr)
        else:
            print(f"{r.status:9} {r.doc_id}  {printable(r.path)}")
    print(
        f"{counts['added']} added, {counts['replaced']} replaced, {counts['unchanged']} skipped (already indexed), "
        f"{counts['refused']} refused"
    )
    return 1 if counts["refused"] else 0


def _ask(args: argparse.Namespace, config: Config) -> int:
    from qa.pipeline import Pipeline

    pipeline = Pipeline(config)
    pipeline.ensure_seeded()  # a fresh clone answers from the bundled briefing, as `qa serve` does
    answer = pipeline.ask(args.question, top_k=args.top_k)
    if args.json:
        print(json.dumps(answer_json(answer), ensure_ascii=False))
    else:
        _print_answer(answer)
    return 0


def _chat(args: argparse.Namespace, config: Config) -> int:
    """Questions one per line (typed at a prompt, or piped in), each read in the light of the ones
    before (follow-ups: qa.followup); with --json one `qa ask --json` object per line."""
    from qa import followup
    from qa.pipeline import Pipeline

    pipeline = Pipeline(config)
    pipeline.ensure_seeded()
    interactive = sys.stdin.isatty() and not args.json
    if interactive:
        print("Ask a question (an empty line or Ctrl-D ends the conversation).")
    context = followup.Context()
    while True:
        try:
            line = input("? " if interactive else "")
        except EOFError:
            break
        if not line.strip():
            if interactive:
                break
            continue
        answer = pipeline.ask(line, top_k=args.top_k, context=context)
        context = followup.after(context, answer)
        if args.json:
            print(json.dumps(answer_json(answer), ensure_ascii=False), flush=True)
        else:
            _print_answer(answer)
            print(flush=True)
    return 0


def _print_answer(answer) -> None:
    if answer.read_as and answer.read_as != answer.question:
        print(f"(read as: {answer.read_as})")
    if not answer.answered:
        print(answer.message)
        return
    cell = answer.citations[0].table if answer.citations else None
    if cell is not None:  # a table's cell: its row and column beside it, the table's caption
        print(f"{_cell_heading(cell)}{answer.answer}")
        if cell.caption:
            print(f"  table: {cell.caption}")
    elif answer.answer != answer.quote:
        print(answer.answer)
    print(f'"{answer.quote}"')
    for i, c in enumerate(answer.citations, 1):
        print(f"  [{i}] {_where(c)}")
    print(f"  confidence {answer.score:.2f}")
    if answer.alternatives:
        print("Also in the documents:")
    for other in answer.alternatives:
        print(f'  - "{other.quote}"')
        print(f"    {_where(other.citations[0])}, confidence {other.score:.2f}")


def _cell_heading(cell) -> str:
    """'Texas × Handgun: ' for a table's cell (what of row and column its table names)."""
    named = " × ".join(part for part in (cell.row, cell.column) if part)
    return f"{named}: " if named else ""


def _where(c) -> str:
    """A citation as one line: title (file, page or section, characters)."""
    where = f", page {c.page}" if c.page else f", section \"{c.section}\"" if c.section else ""
    where += ", read by OCR" if c.ocr else ""
    return f"{c.title} ({c.source}{where}, characters {c.start}-{c.end})"


def _list(args: argparse.Namespace, config: Config) -> int:
    from qa.pipeline import Pipeline

    pipeline = Pipeline(config)
    pipeline.ensure_seeded()  # a fresh clone lists the bundled briefing it will answer from
    docs = pipeline.documents()
    if args.json:
        print(json.dumps([asdict(d) for d in docs], ensure_ascii=False))
        return 0
    if not docs:
        print("No documents yet: add some with `qa add PATH`.")
    for d in docs:
        pages = f"{d.pages} pages, " if d.pages else ""
        print(f"{d.doc_id}  {d.source}  ({pages}{d.chunks} chunks, added {d.added_at})  {d.title}")
    return 0


def _remove(args: argparse.Namespace, config: Config) -> int:
    from qa.pipeline import Pipeline

    from qa.pipeline import AmbiguousDocument

    try:
        removed = Pipeline(config).remove(args.document)
    except AmbiguousDocument as exc:
        print(f"qa: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"qa: no document matches '{args.document}' (see `qa list`)", file=sys.stderr)
        return 1
    for d in removed:
        print(f"removed {d.doc_id}  {d.source}")
    return 0


def _rebuild(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    from qa.pipeline import Pipeline

    with tqdm(total=0, unit="doc", disable=None, file=sys.stderr) as bar:

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = Pipeline(config).rebuild(progress=progress)
    for problem in report.problems:
        print(f"lost {problem}", file=sys.stderr)
    if report.source is None:
        print(f"Nothing to rebuild: {config.index_dir} holds no stored documents.")
        return 0
    print(
        f"Rebuilt {config.index_dir} ({report.generation}): {report.documents} documents re-embedded with "
        f"{config.model}, {len(report.problems)} lost"
    )
    return 1 if report.problems else 0


def _check(args: argparse.Namespace, config: Config) -> int:
    from qa.pipeline import Pipeline

    summary = Pipeline(config).check()  # a damaged index raises IndexError: exit 2, message on stderr
    if summary["generation"] is None:
        print(f"Index {config.index_dir} is empty.")
        return 0
    print(
        f"Index {config.index_dir} is consistent ({summary['generation']}, model {summary['model']}): "
        f"{summary['documents']} documents, {summary['chunks']} chunks, {summary['sentences']} sentences"
    )
    return 0


def _eval(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    from qa.evaluate import evaluate, is_dialogue_file, load_questions, sync_documents
    from qa.pipeline import Pipeline

    if is_dialogue_file(args.questions):
        return _eval_dialogues(args, config)
    if args.docs is None:
        print("qa eval: --docs is required for a question set (dialogues name their documents)", file=sys.stderr)
        return 2

    pipeline = Pipeline(_eval_config(args, config, args.docs.resolve().name, str(args.docs.resolve())))
    sync_documents(pipeline, args.docs)
    questions = load_questions(args.questions, args.limit)
    with tqdm(total=len(questions), unit="question", disable=None, file=sys.stderr) as bar:
        summary, rows = evaluate(pipeline, questions, progress=lambda done, _: bar.update(done - bar.n))
    _write_rows(args.out, rows)
    if args.json:
        print(json.dumps(summary))
    else:
        table = summary.pop("reliability", [])
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {'n/a' if value is None else value}")
        if table:
            print("\nreliability (answered questions; right = the quote holds a gold answer)")
            print(f"{'score':<9}  {'answers':>7}  {'mean score':>10}  {'right':>6}")
            for b in table:
                print(f"{b['bin']:<9}  {b['answers']:>7}  {b['mean_score']:>10.3f}  {b['right']:>6.3f}")
    return 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    from qa.chat import ServeRefused, serve

    try:
        serve(config, host=args.host, port=args.port, insecure=args.insecure)
    except ServeRefused as exc:  # exposed without authentication, or unreadable credentials
        print(f"qa serve: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
