"""Follow-up questions: a question read in the light of the conversation so far, without a language model.

"What did Kallas say?" then "What is her position?": the second question alone names nobody, so
retrieval and reading would look for any position. The rules here rewrite it as "What is Kallas'
position?" and ask the document that answered the turn before first. Everything is explainable:
the answer shows the question as it was read.

- **When a question is a follow-up**: a personal pronoun and no name of its own; a pronoun as the
  question's subject ("Does it include...", "What did she say about Turkey?"); "it", "this",
  "there"... and at most two words of its own that carry meaning; no name and a word that points
  back ("that draft", "this report", "those two", "by then"; not "this year", not "ruled that
  the ...") or "it" as an object ("part of it", "who opposed it?") or "its"; or an ellipsis: at
  most four words, no verb and no name ("Where?", "On what day?", "And in 2007?", "What about France?"); or
  a reference to someone or something just quoted ("the Dutch one", "the other one"; "the town"
  when the last answer's sentence said "the town of Orvik"). Anything else stands on its own and
  is asked unchanged: history never bends such a question.
- **Who and what it is about**: the person is the short answer of a "who" question ("Who is
  Finland's defence minister?" -> "Antti Häkkänen"), else the first name a standalone question
  mentions; the thing is what the question asks about ("What speed limit was imposed..." -> "speed
  limit"), else its first "the ..." phrase, which ends before a clause or a verb ("Who proclaimed
  the embargo that started the crisis?" -> "the embargo", not the answer's name) and is a name
  alone when it holds one ("the plague theory of the Black Death" -> "Black Death"), else its
  first name; a "how many X" question gives the things ("X", or "Y's X" for "how many X does Y
  have") that "they" stand for.
- **How it is rewritten**: "the Dutch one" becomes the name the last answer's sentence gives
  just after "Dutch" (a name the conversation already knows, when it is part of that one), "the
  other one" its first name of two words or more that is not the person the conversation is
  about, and "the town" "the town of Orvik"; a pronoun becomes its person or thing ("her
  position" -> "Kallas' position"); a question word takes over the previous question ("In which
  city did the coalition meet?" then "On what day?" -> "On what day did the coalition meet?
  (Brussels)"), the previous answer in brackets to say which event, or in place of a "who" that
  was the subject ("Who rebuilt the lighthouse?" then "In what year?" -> "In what year Ada Lind
  rebuilt the lighthouse?"); a bare name or list of names ("And France?", "What about Oslo and
  Bergen?") replaces the previous question's first ("How much did Germany pledge?" -> "How much
  did France pledge?"; not one in what a "which" asks for, "Which EU member ..."), and a bare
  year its year, and then only a sentence that mentions that (first) name or year answers; a
  bare phrase replaces the previous question's phrase with the same head noun (and preposition):
  "... of the 4-year-old cohort ...?" then "And of the 3-year-old cohort?", or else its one phrase
  of as many words after that preposition ("in the north" for "What about in the south?"), and
  the quote must mention the new word ("3-year-old", "south"); a new question with words of its
  own gets what the conversation was about in brackets; any other fragment is added to the last
  standalone question.
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
_AUX = r"(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should|may|might)"
_PREPOSITION = r"(?:in|on|at|by|under|for|from|with|of|to|during|since|until|after|before|through)"
# A question's opening: a question word with up to two words after it ("how many", "which act"),
# optionally after a preposition ("On what day"), ending before the auxiliary that follows.
_OPENING = re.compile(
    rf"^(?:{_PREPOSITION}\s+)?(?:how|what|which|whose|when|where|why|who|whom)\b(?:\s+(?!{_AUX}\b)[\w’'-]+){{0,3}}?(?=\s+{_AUX}\b|\s*[?.]?$)",
    re.I,
)
_FOCUS = re.compile(rf"^(?:what|which)\s+((?:(?!{_AUX}\b)[\w’'-]+\s+){{0,3}}?(?!{_AUX}\b)[\w’'-]+)\s+{_AUX}\b", re.I)
_COUNTED = re.compile(rf"^how many\s+((?:(?!{_AUX}\b)[\w’'-]+\s+){{0,3}}?(?!{_AUX}\b)[\w’'-]+)\s+{_AUX}\b", re.I)
# "How many articles does the encyclopedia have?": "they" are the encyclopedia's articles.
_OWNED = re.compile(r"^how many\s+.+?\s+(?:does|do|did)\s+(.+?)\s+have\b", re.I)
_OPENERS = re.compile(r"^(?:and|but|so|also|what about|how about|and what about)\b[\s,]*", re.I)
_SUBJECT_PRONOUN = re.compile(rf"\b{_AUX}\s+(?:he|she|it|they)\b", re.I)
_YEAR = re.compile(r"\b1[5-9]\d\d\b|\b20\d\d\b")
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
# A question's words and punctuation, a dot inside a word kept ("vets.gov").
_TOKEN = re.compile(r"[\w’'.-]*[\w’']|[^\w\s]", re.U)
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her"}
# Words that end a "the ..." phrase: what follows a noun phrase rather than belongs to it.
_PHRASE_ENDS = {
    *_DETERMINERS, "is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could", "will",
    "would", "should", "may", "might", "in", "on", "at", "by", "under", "for", "from", "with", "of", "to",
    "during", "since", "until", "after", "before", "through", "about", "and", "or", "which", "who", "whom", "whose",
    "up", "down", "out", "off", "over", "back",
}
# "the oil embargo", "the 1973 oil crisis": at most this many words after "the" in a phrase, "of ..."
# not counted; set by hand, the longest in the dialogues has three and a verb after them.
PHRASE_WORDS = 4
# "Who ...?" and "Which/what <noun> ...?": a name in the short answer is whom the question was about.
_ASKS_WHO = re.compile(r"^\s*(?:who|whom|(?:which|what)\s+(?!" + _AUX + r"\b)[a-z]+)\b", re.I)
ANSWER_NAME_WORDS = 12  # a "who" answer this long or shorter that holds a name gives the person
# A previous answer this short is carried into an ellipsis ("When?") to say which event it asks about:
# the bar of a "who" answer, not tuned on its own.
CARRIED_ANSWER_WORDS = ANSWER_NAME_WORDS
ELLIPSIS_WORDS = 4
# "the French one": "French" and the name it describes are at most this many words apart ("French
# counterpart Jean Dupont"); set by hand, the dialogues hold two such references.
ONE_GAP_WORDS = 3
# "Hamburg and Bremen", "Oslo, Bergen or Tromsø": what joins the names of a list.
_LIST_JOIN = re.compile(r"\s*,?\s*(?:(?:and|or)\s+)?(?:the\s+)?", re.I)
# "Which EEC member ...": a name just after this is what the question asks for, not what it is about.
_ASKED_FOR = re.compile(r"\b(?:which|what)\s+$", re.I)
# "this report", "that draft", "those two", "these?": what the conversation was about.
_POINTING = re.compile(r"\b(this|that|these|those)\b\s*([\w’']*)", re.I)
# "this year", "that time": a time, not something said before; the dialogues hold "this year".
_NOT_POINTING = re.compile(r"(?:year|week|month|day|morning|evening|time|season|quarter|century)s?$")
# "part of it", "who opposed it?", "its budget": "it" as an object, or "its", names what was said before.
_OBJECT_IT = re.compile(rf"\b(?:{_PREPOSITION}|about)\s+it\b|\bit\s*\?*\s*$|\bits\b", re.I)
# "the British one", "the other one": someone the last answer's sentence names.
_ONE = re.compile(r"\bthe\s+([\w’'-]+)\s+one\b", re.I)
# "the city" with nothing after it that says which ("the city hall", "the city of ..." are not).
_DESCRIPTION = re.compile(rf"\bthe\s+([a-z]+)(?=\s*[?.,]|\s+(?:{_AUX}|(?!of\b){_PREPOSITION}|and|or)\b|$)")
# A question's trailing bracket: what the conversation was about, added when it was read.
_BRACKET = re.compile(r"\s*\([^()]*\)$")


@dataclass(frozen=True)
class Context:
    """What a conversation carries to its next question: the previous question as it was read,
    the last one that stood on its own, whom and what they were about ("he"/"she", "it",
    "they"), the previous question's short answer ("" if it abstained or answered at length), the
    sentence last quoted and the document that answered last (None if none has yet)."""

    question: str = ""
    base: str = ""
    person: str = ""
    thing: str = ""
    things: str = ""
    doc_id: str | None = None
    answer: str = ""
    quote: str = ""


@dataclass(frozen=True)
class Reading:
    """A question as it will be asked. `follow_up`: read from the context (`read_as` may still
    equal the question when nothing could be substituted); `doc_id`: the document to try first;
    `mentions`: the bare name or year the follow-up asked about ("And France?"): a quote that does
    not mention it does not answer."""

    question: str
    read_as: str
    follow_up: bool
    doc_id: str | None = None
    mentions: str = ""


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _own_words(question: str) -> list[str]:
    """The words of `question` that carry meaning of their own."""
    return [w for w in _words(question) if w.lower().strip("’'") not in _FUNCTION and not w.isdigit()]


def names_in(text: str, first_word: bool = False) -> list[str]:
    """The names `text` mentions ("Finland's Defense Minister", "Kallas"), in order. A question's
    first word is capitalised as a sentence start, so it counts only with `first_word` (fragments
    such as "France?")."""
    return [m.group(0).rstrip(".") for m in _name_matches(text.strip(), first_word)]


def _name_matches(text: str, first_word: bool) -> list[re.Match[str]]:
    """`_NAME`'s matches in `text` that are names: not function words, nor the first word unless
    `first_word` (see `names_in`)."""
    return [m for m in _NAME.finditer(text)
            if (first_word or m.start() > 0) and m.group(0).lower() not in _FUNCTION]


def _fragment(question: str) -> str:
    """The question without its opener ("And France?" -> "France?")."""
    return _OPENERS.sub("", question.strip()).strip()


def _name_lists(text: str, first_word: bool = False) -> list[tuple[int, str]]:
    """The names `text` mentions (`names_in`), those a list joins ("Hamburg and Bremen", "Oslo,
    Bergen or Tromsø") as one, as written: (where each starts, the names)."""
    lists: list[list[re.Match[str]]] = []
    for match in _name_matches(text, first_word):
        if lists and _LIST_JOIN.fullmatch(text[lists[-1][-1].end() : match.start()]):
            lists[-1].append(match)
        else:
            lists.append([match])
    return [(found[0].start(), text[found[0].start() : found[-1].end()].rstrip(".")) for found in lists]


def _bare_name(fragment: str) -> str:
    """The name or list of names `fragment` consists of ("France?", "Egypt's?", "the UK and
    France?"), else ""."""
    lists = _name_lists(fragment, first_word=True)
    return lists[0][1] if len(lists) == 1 and _own_words(fragment) == _own_words(lists[0][1]) else ""


def _named_before(question: str) -> str:
    """What a bare name replaces in `question`: its first name or list of names that is not part of
    what a "which" asks for ("Which EEC member ..." names nobody it is about); "" when none."""
    return next((names for at, names in _name_lists(question) if not _ASKED_FOR.search(question[:at])), "")


def _renamed(question: str, previous: str, name: str) -> tuple[str, str]:
    """`question` about `name` in place of `previous`, possessive if that was ("Egypt's" ->
    "France's"), and the name a quote must mention: the first of a list."""
    if re.search(r"['’]s?$", previous) and not re.search(r"['’]s?$", name):
        name = _possessive(name)
    first = names_in(name, first_word=True)[0]
    return question.replace(previous, name, 1), re.sub(r"['’]s?$", "", first)


def _one_referent(word: str, context: Context) -> str:
    """Whom "the <word> one" stands for in the sentence last quoted: for "other", its first name
    of two words or more that shares no word with the person the conversation is about; else the
    name that holds or follows <word> at most ONE_GAP_WORDS words on, cut to the person when that
    is part of it ("British Defence Secretary John Healey" -> "John Healey"), else to the words
    after <word>. "" when the sentence has no such name."""
    names = [m for m in _NAME.finditer(context.quote) if m.start() > 0 and m.group(0).lower() not in _FUNCTION]
    if word.lower() == "other":
        known = set(_words(context.person))
        return next((m.group(0) for m in names if len(_words(m.group(0))) >= 2 and not known & set(_words(m.group(0)))), "")
    at = re.search(rf"\b{re.escape(word)}\b", context.quote, re.I)
    if not at:
        return ""
    for name in (m for m in names if m.end() > at.end()):
        if len(_words(context.quote[at.end() : name.start()])) > ONE_GAP_WORDS:
            return ""
        after_word = context.quote[max(at.end(), name.start()) : name.end()].strip().rstrip(".")
        return context.person if context.person and context.person in after_word else after_word
    return ""


def _described(question: str, context: Context) -> str:
    """`question` with "the city" read as "the city of Kaffa" when the sentence last quoted, or else
    the previous question, says "city of Kaffa"; unchanged when the question names anything."""
    if names_in(question):
        return question
    for description in _DESCRIPTION.finditer(question):
        noun = description.group(1)
        if noun in _FUNCTION:
            continue
        for said in (context.quote, context.question):
            named = re.search(rf"\b{noun}(\s+of\s+(?:the\s+)?{_NAME.pattern})", said)
            if named:
                return question[: description.end()] + named.group(1).rstrip(".") + question[description.end() :]
    return question


def _resolve_references(question: str, context: Context) -> str:
    """`question` with "the British one", "the other one" and "the city" replaced by whom and what
    they stand for (`_one_referent`, `_described`); unchanged when nothing was found."""
    one = _ONE.search(question)
    referent = _one_referent(one.group(1), context) if one else ""
    if referent:
        question = question[: one.start()] + referent + question[one.end() :]
    return _described(question, context)


def _elliptical(question: str) -> bool:
    """Short, without a verb of its own and without a name: "On what day?", "And in 2007?"."""
    fragment = _fragment(question)
    words = _words(fragment)
    return len(words) <= ELLIPSIS_WORDS and not re.search(rf"\b{_AUX}\b", fragment, re.I) and not names_in(fragment)


def is_follow_up(question: str, context: Context) -> bool:
    """Whether `question` leans on the conversation (module docstring); never without a context."""
    if not context.question:
        return False
    if _resolve_references(question, context) != question:
        return True
    words = [w.lower().strip("’'") for w in _words(question)]
    own = _own_words(question)
    has_name = bool(names_in(question))
    if _OPENERS.match(question.strip()) and len(own) <= 3:
        return True
    if _SUBJECT_PRONOUN.search(question):
        return True
    if any(w in _PERSONAL for w in words) and not has_name:
        return True
    if any(w in _THING for w in words) and len(own) <= 2 and not has_name:
        return True
    if (_demonstrative(question) or _OBJECT_IT.search(question)) and not has_name:
        return True
    return _elliptical(question)


def _demonstrative(question: str) -> bool:
    """Whether `question` points back with "this", "these", "those" ("this report", "those two",
    "these?", not "this year": `_NOT_POINTING`), with "that" before a word of meaning or at the end
    after an auxiliary, a preposition or a question word ("When is that draft dated?", "Is that
    so?", not "ruled that the block ..."), or with "by then"."""
    for match in _POINTING.finditer(question):
        word, following = match.group(1).lower(), match.group(2).lower().strip("’'")
        if _NOT_POINTING.match(following):
            continue
        if word != "that":
            return True
        before = question[: match.start()].split()[-1:]
        pointing_word = not before or re.fullmatch(rf"{_AUX}|{_PREPOSITION}|about|{'|'.join(_WH)}", before[0], re.I)
        if pointing_word and (not following or following not in _FUNCTION):
            return True
    return bool(re.search(r"\b(?:by|since|until)\s+then\b", question, re.I))


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


_PRONOUN = re.compile(r"\b(he|she|him|her|his|hers|they|them|their|theirs|it|its)\b(\s*\S?)", re.I)
_NOT_A_NOUN = re.compile(rf"\s+(?:{_PREPOSITION}|about|and|or|that|if|say|said|do|does|did)\b", re.I)


def _replace_pronoun(question: str, context: Context) -> str:
    """The first pronoun of `question` replaced by whom or what it stands for: he/she by the
    person, it by the thing, they by the things counted, the thing or the person; possessives
    become "X's". Unchanged when the conversation has no one to put there."""

    def swap(match: re.Match[str]) -> str:
        word, rest = match.group(1), match.group(2)
        lower = word.lower()
        if lower in ("it", "its"):
            who = context.thing or context.person
        elif lower.startswith(("they", "them", "their")):
            who = context.things or context.thing or context.person
        else:
            who = context.person or context.thing
        if not who:
            return match.group(0)
        follows_noun = bool(re.match(r"\s+[^\W\d_]", rest)) and not _NOT_A_NOUN.match(rest)
        if lower in _POSSESSIVE or (lower == "her" and follows_noun):
            return _possessive(who) + rest
        return who + rest

    return _PRONOUN.sub(swap, question, count=1)


def _opening_words(question: str) -> str:
    """The question's opening ("In which city", "When"); for a question whose question word is its
    subject ("Who established how ..."), that word alone."""
    match = _OPENING.match(question.strip()) or re.match(r"^(?:how|what|which|whose|when|where|why|who|whom)\b", question.strip(), re.I)
    return match.group(0) if match else ""


def _without_question_mark(question: str) -> str:
    return question.strip().rstrip("?").strip()


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def read_question(question: str, context: Context) -> Reading:
    """How to ask `question` after `context` (see the module docstring for the rules)."""
    question = " ".join(question.split())
    if not is_follow_up(question, context):
        return Reading(question, question, False)
    resolved = _resolve_references(question, context)
    fragment = _fragment(resolved)
    name = _bare_name(fragment)
    if resolved != question and not name:
        # "What is the British one's role?": a question of its own once the reference is resolved.
        return Reading(question, resolved, True, context.doc_id)
    opening = _OPENING.match(fragment)
    own = _own_words(fragment)
    previous = _named_before(context.question)
    years, base_years = _YEAR.findall(fragment), _YEAR.findall(context.base)
    replaced = _replace_pronoun(resolved, context)
    swapped = None if opening else _swapped_phrase(fragment, context.question)
    mentions = ""
    if replaced != resolved:
        read_as = replaced
    elif opening and _elliptical(fragment) and _opening_words(context.question):
        read_as = _ellipsis(opening.group(0), context)
    elif name and previous:
        # "And France?" after "How much did Germany pledge?": the same question about France.
        read_as, mentions = _renamed(context.question, previous, name)
    elif len(years) == 1 and len(base_years) == 1 and len(own) <= 1:
        # "And in 2007?" after "... in 2009?": the same question about 2007.
        read_as, mentions = context.base.replace(base_years[0], years[0], 1), years[0]
    elif swapped:
        # "And of the 3-year-old cohort?" after "... of the 4-year-old cohort ...?": that cohort.
        read_as, mentions = swapped
    elif opening:
        # "Which country is excluded?" after a question about the coalition: what it was about.
        about = context.thing or context.person
        read_as = f"{_without_question_mark(fragment)}? ({about})" if about else fragment
    else:
        read_as = f"{_without_question_mark(context.base)}, {_without_question_mark(fragment)}?"
    return Reading(question, read_as, True, context.doc_id, mentions)


def _swapped_phrase(fragment: str, question: str) -> tuple[str, str] | None:
    """`question` with the phrase `fragment` is ("of the 3-year-old cohort?", "in the south?") in
    place of its own phrase with the same head noun, and the same preposition when the fragment
    has one ("of the 4-year-old cohort"), else with the one phrase after that preposition when it
    has as many words ("in the north"); and the fragment's first word the old phrase lacks, which
    a quote must mention. None when the fragment is not such a phrase or the question has none to
    replace."""
    shape = re.fullmatch(rf"(?:({_PREPOSITION}|about)\s+)?(the\s+[^?]+?)\s*\?*", fragment, re.I)
    if not shape or noun_phrases(shape.group(2))[:1] != [shape.group(2)]:
        return None
    preposition, phrase = shape.group(1) or "", shape.group(2)
    lead = rf"\b{preposition}\s+" if preposition else r"\b"
    found = [m for p in noun_phrases(question) if (m := re.search(lead + re.escape(p) + r"\b", question, re.I))]
    same_head = [m for m in found if m.group(0).split()[-1].lower() == phrase.split()[-1].lower()]
    same_shape = [m for m in found if len(m.group(0).split()) == len(f"{preposition} {phrase}".split())]
    chosen = same_head or (same_shape if preposition and len(found) == 1 else [])
    if not chosen:
        return None
    old = chosen[0]
    new = f"{preposition} {phrase}".strip() if preposition else phrase
    mentions = next((w for w in phrase.split()[1:] if w.lower() not in old.group(0).lower().split()), "")
    return question[: old.start()] + new + question[old.end() :], mentions


def _ellipsis(opening: str, context: Context) -> str:
    """"On what day?" after "In which city did the coalition meet?" (answered "Brussels"): the
    new opening, the old rest and the old answer in brackets, "On what day did the coalition meet?
    (Brussels)"; after "Who rebuilt the lighthouse?" (answered "Ada Lind") the answer takes the
    question word's place, "In what year Ada Lind rebuilt the lighthouse?"."""
    before = _opening_words(context.question)
    rest = _without_question_mark(context.question[len(before) :].strip())
    opening = _capitalised(opening)
    if not context.answer:
        return f"{opening} {rest}?"
    if before.lower() == "who" and not re.match(rf"{_AUX}\b", rest, re.I):
        return f"{opening} {context.answer} {rest}?"
    return f"{opening} {rest}? ({context.answer})"


def _run(tokens: list[str], start: int) -> list[str]:
    """The words of a noun phrase that starts at `tokens[start]`, after its "the": up to the word
    that ends it (`_PHRASE_ENDS`, punctuation); a word followed by "the" is a verb ("the army
    besieging the city" -> "army", "the White House issue the ..." -> "White House"), "that" starts
    a clause. [] when it does not end within PHRASE_WORDS."""
    words: list[str] = []
    for token in [*tokens[start:], "?"]:
        if not token[0].isalnum() or token.lower() in _PHRASE_ENDS:
            if token.lower() in _DETERMINERS - {"that"} and len(words) > 1:
                words.pop()
            return words
        if len(words) == PHRASE_WORDS:
            return []
        words.append(token)
    return words


def _verb_ends(subject: list[str], after: list[str]) -> bool:
    """Whether the last of `subject`'s words, a subject after an auxiliary, is its verb: lowercase,
    not alone, and followed by punctuation, a word that ends a phrase (a preposition, a particle:
    "strike down") or nothing (`after`)."""
    last_of_clause = not after or not after[0][0].isalnum() or after[0].lower() in _PHRASE_ENDS
    return len(subject) > 1 and subject[-1].islower() and last_of_clause


def noun_phrases(question: str) -> list[str]:
    """The "the ..." phrases of `question`, in order (`_run`), with an "of ..." that follows ("the
    coalition of the willing", "the University of Notre Dame"). A subject just after an auxiliary
    ends with its verb when the question or a preposition follows: "When was the treaty signed?"
    -> "the treaty", "What is the panel doing about it?" -> "the panel"."""
    tokens = _TOKEN.findall(question)
    phrases = []
    for at, token in enumerate(tokens):
        words = _run(tokens, at + 1) if token.lower() in ("the", "this") else []
        if not words:
            continue
        end = at + 1 + len(words)
        if tokens[end : end + 1] == ["of"]:
            determiner = tokens[end + 1 : end + 2] if tokens[end + 1 : end + 2] == ["the"] else []
            of = _run(tokens, end + 1 + len(determiner))
            words += ["of", *determiner, *of] if of else []
            end += 1 + len(determiner) + len(of) if of else 0
        if at > 0 and re.fullmatch(_AUX, tokens[at - 1], re.I) and _verb_ends(words, tokens[end : end + 1]):
            words = words[:-1]
        phrases.append(" ".join([token, *words]))
    return phrases


def _is_name(text: str) -> bool:
    return bool(text) and names_in(text, first_word=True) == [text]


def _main_phrase(question: str) -> str:
    """What a question is about when it asks no "what X": its first "the ..." phrase; a name alone,
    without its "the" ("the White House" -> "White House"), and so is the name that an "of" part
    holds ("the plague theory of the Black Death" -> "Black Death": what the theory is about).
    "" when it has no such phrase."""
    phrases = noun_phrases(question)
    if not phrases:
        return ""
    words = phrases[0].split(" ", 1)[1]
    of = words.partition(" of ")[2].removeprefix("the ")
    return next((name for name in (words, of) if _is_name(name)), phrases[0])


def after(context: Context, answer: Answer) -> Context:
    """The context for the next question, once `answer` was given (or abstained): a standalone
    question sets whom and what the conversation is about, a follow-up keeps them (a bare name or
    "the other one" becomes the new subject), a "who" question answered with a name makes it the
    person. A read question's bracket (what it was about) is not carried. An abstention keeps the
    document and the sentence quoted of the turns before."""
    asked = _BRACKET.sub("", answer.read_as) or answer.question
    person, thing, things, base = context.person, context.thing, context.things, context.base
    if not answer.read_as:
        base = asked
        names = names_in(asked)
        focus, counted = _FOCUS.match(asked), _COUNTED.match(asked)
        owned = _OWNED.match(asked)
        person = names[0] if names else person
        thing = focus.group(1) if focus else _main_phrase(asked) or (names[0] if names else thing)
        things = f"{_possessive(owned.group(1))} {counted.group(1)}" if counted and owned else counted.group(1) if counted else ""
    else:
        one = _ONE.search(answer.question)
        name = (_one_referent(one.group(1), context) if one else "") or _bare_name(_fragment(answer.question))
        person, thing = (name, name) if name else (person, thing)
    if answer.answered and _ASKS_WHO.match(asked) and len(answer.answer.split()) <= ANSWER_NAME_WORDS:
        named = names_in(answer.answer, first_word=True)
        person = named[0] if named else person
    carried = answer.answer if answer.answered and len(answer.answer.split()) <= CARRIED_ANSWER_WORDS else ""
    quote = " ".join(answer.quote.split()) if answer.answered else context.quote
    doc_id = answer.citations[0].doc_id if answer.answered and answer.citations else context.doc_id
    return Context(asked, base, person, thing, things, doc_id, carried, quote)
