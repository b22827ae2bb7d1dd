"""Questions and short answers by rule: what a question asks for, the words it leaves to the
answer, and who "what did X say?" asks about.

The question's type (number, date, quote, name, place, other) gives the ranker its `type_match`
feature and, where the answer model reads no span (the fast mode), the short answer: the longest
stretch of the sentence of that type. Reporting verbs live here once, for the reader and the
chat's example questions (`qa.chat.examples`).
"""

from __future__ import annotations

import re

from qa.read.span import SpanResult

# Reporting verbs: base form -> the forms documents write ("said", "says"), one list for the
# reader and the chat's example questions (qa.chat.examples, which finds reported speech with all
# of them). Only ASKING_VERBS make a question ask for someone's words ("What did Kallas say?":
# type "quote"); the reader's models were trained with exactly those.
REPORTING_VERBS: dict[str, tuple[str, ...]] = {
    "say": ("said", "says"),
    "tell": ("told",),
    "state": ("stated", "states"),
    "quote": ("quoted", "quotes"),
    "warn": ("warned",),
    "emphasize": ("emphasized", "emphasizes"),
    "emphasise": ("emphasised", "emphasises"),
    "stress": ("stressed",),
    "claim": ("claimed",),
    "announce": ("announced", "announces"),
    "note": ("noted",),
    "clarify": ("clarified",),
    "argue": ("argued",),
    "insist": ("insisted",),
    "add": ("added",),
}
ASKING_VERBS = ("say", "tell", "state", "quote", "warn", "emphasize", "emphasise", "stress", "claim", "announce")
_SAY = re.compile(
    r"\b(" + "|".join(sorted({w for v in ASKING_VERBS for w in (v, *REPORTING_VERBS[v])}, key=len, reverse=True)) + r")\b",
    re.I,
)
_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?)"
_DAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DATE = re.compile(
    rf"\b(?:(?:on |by |in |since |until )?(?:{_DAYS}(?:,? {_MONTHS} \d{{1,2}})?|{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?|\d{{1,2}} {_MONTHS}(?:,? \d{{4}})?|{_MONTHS},? \d{{4}}|(?:the )?(?:early |late |mid-?)?\d{{4}}s?|(?:the )?end of (?:next |this |last )?(?:week|month|year)|(?:next|last|this) (?:week|month|year)|\d{{1,2}}(?:st|nd|rd|th) century))\b"
)
_NUMBER_WORDS = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|several)"
_NUMBER = re.compile(
    rf"(?:\b(?:approximately|about|around|nearly|almost|over|more than|less than|some|up to) )?(?:[$€£]\s?)?(?:\d[\d,.]*\d|\b\d\b|\b{_NUMBER_WORDS}\b)(?:[ -](?:{_NUMBER_WORDS}|percent|per cent)\b)*(?:\s?%)?(?: [a-z]+)?",
    re.I,
)
_NAME = re.compile(r"(?<![\w.])[A-Z][\w’'\-]*\.?(?:\s+(?:(?:of|de|van|von|der|la|du)\s+)?[A-Z][\w’'\-]*\.?)*")
_PLACE = re.compile(r"\b(?:in|at|near|from)\s+((?:the\s+)?[A-Z][\w’'\-]*(?:(?:\s+|,\s+|\s+of\s+|\s+in\s+)[A-Z][\w’'\-]*)*)")
_QUOTE = re.compile(r"[\"“«]([^\"“”»]{3,})[\"”»]")


# "What did Kallas say?", "How did the minister warn the allies?", "What did she stress about the
# plan?": the speech verb ends the question but for a listener or an "about ...". With more after
# it ("What did he claim the weapon would end?") the question asks for a fact the speaker stated.
_ASKS_FOR_WORDS = re.compile(
    rf"^\s*(?:what|how)\b.*?{_SAY.pattern}(?:\s+[\w’'-]+){{0,2}}(?:\s+(?:about|on|regarding)\b.*)?[\s?.!]*$", re.I
)


def question_type(question: str) -> str:
    q = question.lower().strip()
    if re.search(r"\bhow (many|much|long|far|old|large|big|often)\b|\bwhat (number|percentage|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month|time|century|decade)\b|\b(which|what) (year|day|month)\b", q):
        return "date"
    if _ASKS_FOR_WORDS.match(q):
        return "quote"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b", q):
        return "name"
    if re.search(r"\bwhere\b|\b(what|which) (city|country|place|location|state|region)\b", q):
        return "place"
    return "other"


def typed_spans(kind: str, sentence: str, question_words: set[str]) -> list[tuple[int, int]]:
    """Candidate short answers of the asked type, as offsets into the sentence."""
    if kind == "quote":
        return [m.span(1) for m in _QUOTE.finditer(sentence)]
    if kind == "date":
        spans = [m.span() for m in _DATE.finditer(sentence)]
    elif kind == "number":
        spans = [m.span() for m in _NUMBER.finditer(sentence)]
    elif kind == "place":
        spans = [m.span(1) for m in _PLACE.finditer(sentence)]
    elif kind == "name":
        spans = [m.span() for m in _NAME.finditer(sentence)]
    else:
        return []
    # An answer tells the asker something new: drop spans made only of the question's words.
    return [(s, e) for s, e in spans if any(_norm(w) not in question_words for w in sentence[s:e].split())]


def _norm(word: str) -> str:
    return word.lower().replace("’", "'").strip(".,;:?!'\"()")


def words(text: str) -> set[str]:
    return {_norm(w) for w in text.split()}


def short_answer(question: str, sentence: str) -> tuple[int, int] | None:
    """The span of the sentence that answers a who/when/where/how-many/said question."""
    kind = question_type(question)
    spans = typed_spans(kind, sentence, words(question))
    if not spans:
        return None
    # The longest candidate: "Kaja Kallas" over "EU", the whole quoted speech.
    start, end = max(spans, key=lambda s: (s[1] - s[0], -s[0]))
    # Quoted speech is kept whole: its words are the speaker's, even those the question repeats.
    keep = set() if kind == "quote" else words(question)
    return _trim(sentence, start, end, keep)


def takes_model_span(question: str, span: SpanResult | None, rules: tuple[int, int] | None) -> bool:
    """The answer model's span is the short answer when it read the sentence and found one, but
    for "what did X say" whose quote holds quoted speech: the speaker's words are kept whole."""
    return span is not None and span.end > span.start and not (rules and question_type(question) == "quote")


def _trim(sentence: str, start: int, end: int, question_words: set[str]) -> tuple[int, int] | None:
    """Drop the question's own words and stray punctuation from both ends of a span."""
    pieces = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", sentence[start:end])]
    while len(pieces) > 1 and _norm(sentence[pieces[0][0] : pieces[0][1]]) in question_words:
        pieces.pop(0)
    while len(pieces) > 1 and _norm(sentence[pieces[-1][0] : pieces[-1][1]]) in question_words:
        pieces.pop()
    if not pieces:
        return None
    start, end = pieces[0][0], pieces[-1][1]
    while end > start and sentence[end - 1] in " ,;:":
        end -= 1
    while start < end and sentence[start] in " ,;:":
        start += 1
    return (start, end) if end > start else None



def speech_question(question: str, sentence: str) -> bool:
    """A "what did X say?" question read against a sentence that quotes speech. The answer model
    learnt SQuAD's factoid questions (19 of squad-dev-public's 5,696 are such), so its span score
    is no evidence either way here: the answer verifier reads it as the average one."""
    return question_type(question) == "quote" and bool(_QUOTE.search(sentence))


def quoted_speech(sentence: str) -> str:
    """The words a sentence quotes, letters and digits only, lower-cased ("" if it quotes none):
    the same statement reported twice reads the same."""
    return "".join(ch for m in _QUOTE.finditer(sentence) for ch in m.group(1).lower() if ch.isalnum())


def speaker(question: str) -> str | None:
    """Whose words a "what did X say?" question asks for: the last capitalised word before the
    speech verb ("Kallas", "Healey"), or None for other questions."""
    if question_type(question) != "quote":
        return None
    verb = _SAY.search(question)
    names = _NAME.findall(question[: verb.start()] if verb else question)
    names = [n for n in names if n.split()[0].lower() not in ("what", "how", "did", "does", "do")]
    return names[-1].split()[-1].rstrip(".") if names else None



def without_speech_verbs(question: str) -> str:
    """The question with its reporting verbs blanked: in "what did X say?" the verb names the kind
    of answer (a quote), like "who" or "when"; the document may say "said", "stressed" or
    "warned", so it is not a word the answer must hold."""
    return _SAY.sub(" ", question)
