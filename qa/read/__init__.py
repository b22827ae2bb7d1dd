"""The extractive reader: from a question and its evidence to a verdict, a verbatim quote with
its citation and short answer, or an abstention.

One entry: `Reader(config).answer(question, q_vector, evidence, strict)` -> `Verdict`, where
`evidence = gather(view, hits)` holds the retrieved chunks' sentences by id. Inside:
- `questions`: question types, reporting verbs, short answers by rule;
- `features`: what is known of each candidate sentence, and the logistic ranker, verifiers and
  calibration that judge them (`qa/models/reader.json`);
- `span`: the answer models (the MiniLM, and the base-size model of the cascade, `basemodel`,
  `lora`) that read a question with a sentence and find the answer span;
- `verdict`: ranking, the answer's quote and short answer, alternatives, abstention.
The reader never imports the store: it reads what `gather` hands it, and asks the view only for
records by id through `evidence.Source`.
"""

from qa.read.evidence import Evidence, Source, gather
from qa.read.questions import REPORTING_VERBS
from qa.read.verdict import NOT_FOUND, Reader, Verdict

__all__ = ["NOT_FOUND", "REPORTING_VERBS", "Evidence", "Reader", "Source", "Verdict", "gather"]
