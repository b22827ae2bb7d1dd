"""Follow-up questions: a question read in the light of the conversation so far, without a language model.

"What did Kallas say?" then "What is her position?": the second question alone names nobody, so
retrieval and reading would look for any position. The rules here rewrite it as "What is Kallas's
position?" and ask the document that answered the turn before first. Everything is explainable:
the answer shows the question as it was read.

- **When a question is a follow-up**: it has a personal pronoun (he, her, their...) and no name
  of its own; or "it", "this", "there"... and at most two words of its own that carry meaning; or it
  is elliptical ("Where?", "And last year?", "What about Germany?"). Anything else stands on its own
  and is asked unchanged: a question with its own subject is never bent by the history.
- **Who it is about** (the conversation's subject): the short answer of a "who" question that
  named someone ("Who is Finland's defence minister?" -> "Antti Häkkänen"), else the name in the
  question ("What did Kallas say?" -> "Kallas"), else the subject carried from the turn before.
- **How it is rewritten**: pronouns become the subject ("her position" -> "Kallas's position");
  a bare question word takes over the previous question ("When did the coalition meet?" then
  "Where?" -> "Where did the coalition meet?"); any other fragment is added to the previous
  question ("How much did Germany pledge?" then "And France?" -> "How much did Germany pledge?
  France").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.types import Answer

# Pronouns that stand for a person or group named earlier; possessives become "X's".
_PERSONAL = {"he", "she", "him", "her", "his", "hers", "they", "them", "their", "theirs", "himself", "herself"}
_POSSESSIVE = {"his", "their", "its", "hers", "theirs"}
# Words that stand for a thing or place named earlier; counted only when the question has little else.
_THING = {"it", "its", "this", "that", "these", "those", "there", "then"}
_WH = ("what", "who", "whom", "whose", "when", "where", "why", "which", "how")
_WH_PHRASE = re.compile(r"^(how (?:many|much|long|often|far|old)|what (?:year|time|day|date)|when|where|why|who|what|which|how)\b", re.I)
_OPENERS = re.compile(r"^(?:and|but|so|also|what about|how about|and what about)\b[\s,]*", re.I)
# Words that carry no subject of their own in a question.
_FUNCTION = {
    *_WH, *_PERSONAL, *_THING, "is", "are", "was", "were", "be", "been", "do", "does", "did", "has", "have",
    "had", "can", "could", "will", "would", "should", "may", "might", "the", "a", "an", "of", "in", "on", "at",
    "to", "for", "from", "by", "with", "about", "and", "or", "but", "so", "also", "else", "more", "other",
    "again", "too", "there", "that", "then", "any", "all", "say", "said", "says", "tell", "told", "mean",
    "means", "exactly", "really", "i", "me", "we", "us", "you", "your", "our", "my", "not", "no", "yes",
}
_WORD = re.compile(r"[^\W_][\w’'.-]*[^\W_]|[^\W_]", re.U)
# A name: capitalised words in a row (with "'s" and joining words inside).
_NAME = re.compile(r"\b[A-Z][\w’'.-]*(?:\s+(?:of\s+the\s+|of\s+|de\s+|von\s+)?[A-Z][\w’'.-]*)*", re.U)
NAME_WORDS = 6  # a short answer this long or shorter, all capitalised, names someone


@dataclass(frozen=True)
class Context:
    """What a conversation carries to its next question: the previous question as it was read, the
    person and the thing it was about (what "he"/"she" and "it" stand for), and the document that
    answered it (None if nothing has yet)."""

    question: str = ""
    person: str = ""
    thing: str = ""
    doc_id: str | None = None


@dataclass(frozen=True)
class Reading:
    """A question as it will be asked. `follow_up`: rewritten from the context (`read_as` differs
    or `doc_id` is preferred); `doc_id`: the document to try first."""

    question: str
    read_as: str
    follow_up: bool
    doc_id: str | None = None


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _own_words(question: str) -> list[str]:
    """The words of `question` that carry meaning of their own."""
    return [w for w in _words(question) if w.lower().strip("’'") not in _FUNCTION and not w.isdigit()]


def names_in(text: str, first_word: bool = False) -> list[str]:
    """The names `text` mentions ("Finland's Defense Minister", "Kallas"), in order. A question's
    first word is capitalised as a sentence start, so it counts only with `first_word` (fragments
    such as "France?")."""
    text = text.strip()
    return [
        m.group(0).rstrip(".")
        for m in _NAME.finditer(text)
        if (first_word or m.start() > 0) and m.group(0).lower() not in _FUNCTION
    ]


def _is_name(answer: str) -> bool:
    words = answer.strip().rstrip(".").split()
    return 0 < len(words) <= NAME_WORDS and bool(_NAME.fullmatch(" ".join(words)))


def is_follow_up(question: str, context: Context) -> bool:
    """Whether `question` leans on the conversation (module docstring); never without a context."""
    if not context.question:
        return False
    words = [w.lower().strip("’'") for w in _words(question)]
    own = _own_words(question)
    has_name = bool(names_in(question))
    if _OPENERS.match(question.strip()) and len(own) <= 3:
        return True
    if any(w in _PERSONAL for w in words) and not has_name:
        return True
    if any(w in _THING for w in words) and len(own) <= 2 and not has_name:
        return True
    return not own and not has_name  # "Where?", "Why?", "How many?"


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


_PRONOUN = re.compile(r"\b(he|she|him|her|his|hers|they|them|their|theirs|it|its)\b(\s*\S?)", re.I)
_NOT_A_NOUN = re.compile(r"\s+(?:to|in|on|at|for|about|from|with|by|and|or|that|if|say|said|do|does|did)\b", re.I)
# "the coalition", "this plan": what "it" may stand for when a question names nothing.
_THING_PHRASE = re.compile(r"\b(?:the|this|that)\s+((?:[a-z][\w-]*\s+){0,2}[a-z][\w-]*)(?=\s+(?:is|are|was|were|has|have|had|do|does|did|will|would|can|could|of|in|on|at|for|to|from|with|by|and|or)\b|\s*[?.,]|$)")


def _replace_pronouns(question: str, context: Context) -> str:
    """The first pronoun of `question` replaced by whom or what it stands for: he/she by the
    person, it by the thing, they by the thing (a group) or the person; possessives become "X's"."""

    def swap(match: re.Match[str]) -> str:
        word, rest = match.group(1), match.group(2)
        lower = word.lower()
        if lower in ("it", "its"):
            who = context.thing or context.person
        elif lower.startswith(("they", "them", "their")):
            who = context.thing or context.person
        else:
            who = context.person or context.thing
        if not who:
            return match.group(0)
        follows_noun = bool(re.match(r"\s+[^\W\d_]", rest)) and not _NOT_A_NOUN.match(rest)
        if lower in _POSSESSIVE or (lower == "her" and follows_noun):
            return _possessive(who) + rest
        return who + rest

    return _PRONOUN.sub(swap, question, count=1)


def _without_question_mark(question: str) -> str:
    return question.strip().rstrip("?").strip()


def read_question(question: str, context: Context) -> Reading:
    """How to ask `question` after `context` (see the module docstring for the rules)."""
    question = " ".join(question.split())
    if not is_follow_up(question, context):
        return Reading(question, question, False)
    fragment = _OPENERS.sub("", question.strip()).strip()
    wh = _WH_PHRASE.match(fragment)
    own = _own_words(fragment)
    names = names_in(fragment, first_word=not wh)
    previous_names = names_in(context.question)
    if _PRONOUN.search(question) and _replace_pronouns(question, context) != question:
        read_as = _replace_pronouns(question, context)
    elif wh and not own:
        # "Where?" after "When did the coalition meet?": the new question word, the old question.
        rest = _WH_PHRASE.sub("", context.question.strip(), count=1).strip()
        read_as = f"{wh.group(1)[0].upper()}{wh.group(1)[1:]} {_without_question_mark(rest)}?" if rest else question
    elif names and previous_names and " ".join(own) == " ".join(_words(names[0])):
        # "And France?" after "How much did Germany pledge?": the same question about France.
        read_as = context.question.replace(previous_names[0], names[0], 1)
    elif wh:
        # "Which country is excluded?" after a question about the coalition: what it was about.
        about = context.thing or context.person
        read_as = f"{_without_question_mark(fragment)}? ({about})" if about else fragment
    else:
        read_as = f"{_without_question_mark(context.question)}, {_without_question_mark(fragment)}?"
    return Reading(question, read_as, True, context.doc_id)


def after(context: Context, answer: Answer) -> Context:
    """The context for the next question, once `answer` was given (or abstained). A question with
    its own subject sets person and thing; a follow-up keeps them; a "who" question answered with
    a name makes that name the person. An abstention keeps the document of the turns before."""
    asked = answer.read_as or answer.question
    person, thing = context.person, context.thing
    if not answer.read_as:
        names = names_in(asked)
        phrase = _THING_PHRASE.search(asked)
        if names:
            person = thing = names[0]
        elif phrase:
            thing = "the " + phrase.group(1)
    if answer.answered and re.match(r"\s*who\b", asked, re.I) and _is_name(answer.answer):
        person = answer.answer.strip().rstrip(".")
    doc_id = answer.citations[0].doc_id if answer.answered and answer.citations else context.doc_id
    return Context(asked, person, thing, doc_id)
