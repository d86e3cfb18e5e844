"""`hare-offline-extractive-v1`: a deterministic stand-in generator with no language model.

It exists for fast tests of the graph's plumbing and for machines without any model (the demo
profile uses the real SmolLM2-135M-Instruct instead): it rebuilds
text from the seed document's own sentences, so its output reads as English and stays on the
seed's topic, but it invents nothing. Outputs by task:

- prose styles `textbook`, `story`, `wiki`, `blog` and the D2 study guide `qa`: a title from
  the seed's most frequent content words, an introduction, the seed's key sentences regrouped
  into sections, a recap;
- D3 Restruct: `qa` → {"question", "answer"}, `mcq` → {"question", "options", "answer"} (a
  blanked word, number or name and three distractors of the same kind from the seed), `cloze`
  → {"text", "answer"}, `summary` → {"summary"} (lead sentences);
- `paraphrase`: synonym swaps from a small table and clause reordering.

`task` may be a bare name, a stage-qualified name or a template id (`d2/qa`, `d3/mcq.v1`).
A bare `qa` means the JSON task when the instructions (system message and prompt, outside the
quoted seed) ask for JSON, else the study guide. The source text is `seed_text`, else the
`<extract>`/`<document>` in the prompt, else the prompt; because `task` and `seed_text` steer
the output, they are part of this backend's cache key. Randomness comes from a hash of the
input (and `seed`), never from global state, so the same request always gives the same text.
Token counts are whitespace words.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hare_assets.lib.generation.types import Backend, Completion, GenerationRequest, PermanentError

MODEL_ID = "hare-offline-extractive-v1"
PROSE = ("textbook", "story", "wiki", "blog", "qa_guide")
TASKS = (*PROSE, "qa", "mcq", "cloze", "summary", "paraphrase")

_STOP = frozenset(
    """a about above after again against all also although am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either even ever every few
    for from further had has have having he her here hers herself him himself his how however i if in into
    is it its itself just least less let like made make many may me might more most much must my myself
    neither no nor not now of off often on once one only or other others our ours ourselves out over own
    per perhaps quite rather really same shall she should since so some such than that the their theirs them
    themselves then there these they this those though through thus to too toward towards under until up
    upon us very via was we were what whatever when where whether which while who whom whose why will with
    within without would yet you your yours yourself yourselves first second new two three four five six
    seven eight nine ten said says also around among another anything because become becomes became called
    include includes including known something sometimes still today used uses using way ways well years
    year time times"""
    .split()
)
# Frequent words that make poor key terms (verbs, adjectives, fillers); still counted for scoring.
_WEAK = frozenset(
    """able back best better big came come comes could early end even far feel felt find found full get gets give
    given going gone good got great help high keep kept kind last late later less like little long look looked lot
    lots made make makes making much need needs next old part pretty put real right run said say see seems seen set
    show small sort start still sure take taken takes tell think thing things thought took tried try turn turned
    want wanted went whole work works worked yes began brought bought built caught did done drew fell fought gave
    grew held knew led left lost meant met paid ran rose sent sat sold spent stood taught told won wrote written""".split()
)
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "sr.", "jr.", "vs.", "e.g.", "i.e.", "etc.", "no.", "fig.", "u.s.")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)]))\s+(?=[\"'“‘(]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
# a number, a run of capitalised words ("Puerto Rico", "Ninth Symphony"), or a word
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|[A-Z][A-Za-z'’-]*(?: [A-Z][A-Za-z'’-]*)*|[a-z][A-Za-z'’-]*[A-Za-z]|[a-z]")
_INITIAL = re.compile(r"(?:^|\s)[A-Z]\.$")  # "J. Lyons", "John F. Kennedy"
_TAGGED = re.compile(r"<(extract|document|text|passage)>\s*(.*?)\s*</\1>", re.DOTALL | re.IGNORECASE)
_MAX_SENTENCE_WORDS = 55  # longer "sentences" are usually run-together headers or lists
_MAX_BLANK_WORDS = 40  # a question about a sentence longer than this is hard to read
_PRONOUNS = frozenset("it this that these those they he she we i you there here such one".split())

_SYNONYMS = {
    "big": "large", "large": "big", "quickly": "rapidly", "rapidly": "quickly", "began": "started",
    "begins": "starts", "begin": "start", "important": "significant", "significant": "important",
    "often": "frequently", "frequently": "often", "usually": "typically", "typically": "usually",
    "however": "nevertheless", "difficult": "challenging", "simple": "straightforward", "shows": "demonstrates",
    "showed": "demonstrated", "helps": "assists", "helped": "assisted", "buy": "purchase", "bought": "purchased",
    "children": "kids", "child": "kid", "method": "technique", "methods": "techniques", "problem": "issue",
    "problems": "issues", "choose": "select", "chose": "selected", "chosen": "selected", "whole": "entire",
    "entire": "whole", "almost": "nearly", "nearly": "almost", "maybe": "perhaps", "perhaps": "maybe",
    "idea": "notion", "ideas": "notions", "improve": "enhance", "improves": "enhances", "improved": "enhanced",
    "explains": "describes", "explain": "describe", "finds": "discovers", "therefore": "thus", "thus": "therefore",
    "happy": "glad", "afraid": "scared", "scared": "afraid", "mistake": "error", "mistakes": "errors",
    "finished": "completed", "completed": "finished", "speak": "talk", "spoke": "talked", "car": "automobile",
    "cars": "automobiles", "wants": "wishes", "wanted": "wished", "receive": "get", "received": "got",
    "purpose": "aim", "reasons": "causes", "quick": "fast", "stated": "said", "assist": "help",
}
_SUBORDINATORS = "if|when|although|because|while|after|before|since|unless|whenever|once"
_SUB_FIRST = re.compile(rf"^({_SUBORDINATORS}) ([^,]{{3,}}), ([^,]{{3,}}?)([.!])$", re.IGNORECASE)
# Moved to the front only for conjunctions that rarely start a relative clause ("the day when …").
_SUB_LAST = re.compile(r"^([^,]{3,}?) (if|although|because|unless|whenever) ([^,]{3,}?)([.!])$")
_DEFINITION = re.compile(
    r"^((?:The|A|An|[A-Z][\w'’-]*)(?: [\w'’-]+){0,4}) (is|are|was|were) ((?:a|an|the|one of|among|known as|called) [^.!?]{8,})[.!]$"
)

_TITLES = {
    "textbook": "Understanding {A}, {B} and {C}",
    "story": "A Story of {A} and {B}",
    "wiki": "{A}: {B} and {C}",
    "blog": "Notes on {A}, {B} and {C}",
    "qa_guide": "Questions and Answers on {A} and {B}",
}
# a, b, c are the seed's three most frequent content words, shown as a list of key terms (they
# may be bare nouns, plurals or names, so they are never put where an article would be needed).
_INTROS = {
    "textbook": (
        "This unit is organised around three key terms: {a}, {b} and {c}. The sections below take them in turn.",
        "The key terms of this unit are {a}, {b} and {c}, and each section below explains one of them.",
    ),
    "story": (
        "This story is told in the words of the account it comes from, and its threads are {a}, {b} and {c}.",
        "What follows is a story in three threads: {a}, {b} and {c}.",
    ),
    "wiki": (
        "This article covers its subject under three headings: {a}, {b} and {c}.",
        "The main terms discussed in this article are {a}, {b} and {c}.",
    ),
    "blog": (
        "Today's post collects what I have been reading, and three words keep coming up: {a}, {b} and {c}.",
        "I have been reading a lot lately, and this post is about three things: {a}, {b} and {c}.",
    ),
    "qa_guide": (
        "The questions below work through three key terms one step at a time: {a}, {b} and {c}.",
        "This study guide answers questions about three key terms: {a}, {b} and {c}.",
    ),
}
_RECAPS = {
    "textbook": "To recap, this unit covered three key terms: {a}, {b} and {c}. The central idea to remember is the following. {key}",
    "story": "And so the story comes to its end.",
    "wiki": "In summary, this article has covered three related terms: {a}, {b} and {c}.",
    "blog": "That is all for now. Thanks for reading, and look out for more posts on {a}, {b} and {c}.",
    "qa_guide": "Taken together, these answers give a short overview of the key terms {a}, {b} and {c}.",
}
_SECTION_HEADINGS = {"textbook": "## {W}", "wiki": "== {W} ==", "blog": "### {W}"}


@dataclass(frozen=True)
class _Sentence:
    position: int
    text: str
    words: tuple[str, ...]  # lower-cased word tokens


class _Seed:
    """The parsed source text: complete sentences, content-word frequencies (plurals folded into
    singulars), and how each word is best shown (its usual casing, or the multi-word name it
    belongs to: "York" → "New York")."""

    def __init__(self, text: str):
        self.text = text
        self.sentences = [
            _Sentence(i, s, tuple(w.lower() for w in _WORD.findall(s))) for i, s in enumerate(split_sentences(text))
        ]
        self.usable = [s for s in self.sentences if 5 <= len(s.words) <= _MAX_SENTENCE_WORDS and s.text[-1] in ".!?\"'”’)"]
        surface: dict[str, Counter[str]] = {}
        names: Counter[str] = Counter()
        raw: Counter[str] = Counter()
        for sentence in self.sentences:
            tokens = _WORD.findall(sentence.text)
            for n, word in enumerate(tokens):
                key = word.lower()
                if _is_content(key):
                    raw[key] += 1
                    if n > 0:
                        surface.setdefault(key, Counter())[word] += 1
            names.update(_capitalised_runs(tokens))
        self.fold = {w: w[:-1] for w in raw if w.endswith("s") and not w.endswith("ss") and w[:-1] in raw}
        self.freq: Counter[str] = Counter()
        self.first: dict[str, int] = {}  # order of first appearance, the tie-breaker
        for word, count in raw.items():  # Counter keeps insertion order: first appearance
            base = self.fold.get(word, word)
            self.freq[base] += count
            self.first.setdefault(base, len(self.first))
        merged: dict[str, Counter[str]] = {}
        for key, counts in surface.items():
            merged.setdefault(self.fold.get(key, key), Counter()).update(counts)
        runs_by_word: dict[str, list[tuple[int, str]]] = {}
        for run, count in names.items():
            for part in set(run.split()):
                runs_by_word.setdefault(part, []).append((count, run))
        self.forms: dict[str, str] = {}
        for word in self.freq:
            forms = merged.get(word)
            best = forms.most_common(1)[0][0] if forms else word
            if best[0].isupper() and best in runs_by_word:
                best = max(runs_by_word[best], key=lambda cr: (cr[0], -len(cr[1]), cr[1]))[1]
            self.forms[word] = best

    def norm(self, word: str) -> str:
        return self.fold.get(word, word)

    def display(self, word: str) -> str:
        return self.forms.get(word, word)

    def top_words(self, n: int) -> list[str]:
        """The n most frequent content words that are shown differently ("world" and "cup" are
        both "World Cup": only the first counts)."""
        ranked = sorted(self.freq.items(), key=lambda kv: (-kv[1], self.first[kv[0]]))
        out: list[str] = []
        shown: set[str] = set()
        terms = [w for w, _ in ranked if w not in _WEAK and not w.endswith(("ed", "ly", "ing")) and len(w) >= 4]
        for word in terms + [w for w, _ in ranked if w not in terms]:  # weak words only to fill up
            if self.display(word).lower() not in shown:
                shown.add(self.display(word).lower())
                out.append(word)
            if len(out) == n:
                break
        return out

    def mentions(self, sentence: _Sentence, word: str) -> bool:
        return any(self.norm(w) == word for w in sentence.words)

    def score(self, sentence: _Sentence) -> float:
        content = {self.norm(w) for w in sentence.words if _is_content(w)}
        return sum(self.freq[w] for w in content) / max(len(sentence.words), 1) ** 0.5

    def ranked(self) -> list[_Sentence]:
        return sorted(self.usable, key=lambda s: (-self.score(s), s.position))


def _capitalised_runs(tokens: list[str]) -> list[str]:
    """Runs of 2-3 capitalised words ("New York City"), leading articles dropped."""
    runs: list[str] = []
    current: list[str] = []
    for token in [*tokens, "x"]:
        if token[0].isupper():
            current.append(token)
            continue
        while current and current[0].lower() in ("the", "a", "an", "in", "on", "at", "by", "for", "from"):
            current.pop(0)
        if len(current) >= 2:
            runs.append(" ".join(current[:3]))
        current = []
    return runs


class ExtractiveBackend(Backend):
    kind = "extractive"
    model = MODEL_ID
    concurrent = False

    def __init__(self, model: str | None = None):
        if model not in (None, MODEL_ID):
            raise ValueError(f"the extractive backend is {MODEL_ID!r}; it cannot run model {model!r}")

    def key_extra(self, request: GenerationRequest) -> dict[str, Any]:
        return {"task": request.task, "seed_text": request.seed_text}

    def generate_one(self, request: GenerationRequest) -> Completion:
        task = resolve_task(request.task, request.prompt, request.system)
        source = source_text(request)
        rng = random.Random(_digest(task, source, request.prompt, request.seed))
        if task == "paraphrase":
            text = paraphrase(source, rng)
        elif task in PROSE:
            text = compose(task, _Seed(source), rng, request.max_tokens)
        else:
            seed = _Seed(source)
            item = {"qa": _qa, "mcq": _mcq, "cloze": _cloze, "summary": _summary}[task](seed, rng)
            text = json.dumps(item, ensure_ascii=False)
        prompt_words = len(request.prompt.split()) + len((request.system or "").split())
        return Completion(text, prompt_words, len(text.split()))


# --- parsing ---------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """Sentences of each line/paragraph, whitespace collapsed; 'Dr. Smith' stays one sentence."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*[-*#•]|\s*\d+[.)] )", text):
        block = " ".join(block.split())
        if not block:
            continue
        pieces = _SENTENCE_END.split(block)
        merged: list[str] = []
        for piece in pieces:
            if merged and (merged[-1].lower().endswith(_ABBREVIATIONS) or _INITIAL.search(merged[-1])):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        out.extend(p.strip() for p in merged if p.strip())
    return out


def resolve_task(task: str, prompt: str = "", system: str | None = None) -> str:
    name = (task or "").strip().lower()
    stage, _, base = name.rpartition("/")
    base = base.split(".", 1)[0]
    if base == "qa":
        if stage == "d2":
            return "qa_guide"
        instructions = _TAGGED.sub(" ", f"{system or ''} {prompt}")  # not the seed: it may mention JSON itself
        if stage == "d3" or "json" in instructions.lower():
            return "qa"
        return "qa_guide"
    if base not in TASKS:
        raise PermanentError(f"the extractive backend has no task {task!r}; tasks: {sorted({*TASKS, 'qa'} - {'qa_guide'})}")
    return base


def source_text(request: GenerationRequest) -> str:
    if request.seed_text.strip():
        return request.seed_text
    tagged = _TAGGED.search(request.prompt)
    return tagged.group(2) if tagged else request.prompt


def _is_content(word: str) -> bool:
    return len(word) >= 3 and word not in _STOP and word.isalpha()


def _digest(*parts: object) -> int:
    blob = json.dumps([str(p) for p in parts], ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


# --- prose -----------------------------------------------------------------------------------


def compose(style: str, seed: _Seed, rng: random.Random, max_tokens: int = 1024) -> str:
    """Title, introduction, key sentences grouped under the seed's main words, recap."""
    ranked = seed.ranked()
    if not ranked:
        raise PermanentError("seed text has no complete sentences to build on")
    top = seed.top_words(3)
    while len(top) < 3:
        top.append(["the topic", "its context", "its details"][len(top)])
    a, b, c = (seed.display(w) for w in top)
    fill = {"a": a, "b": b, "c": c, "A": _cap(a), "B": _cap(b), "C": _cap(c)}
    budget = max(60, min(460, int(max_tokens * 0.7)))  # words of seed sentences; the frame adds up to ~120
    chosen: list[_Sentence] = []
    used = 0
    for sentence in ranked:
        n = len(sentence.text.split())
        if chosen and used + n > budget:
            continue
        chosen.append(sentence)
        used += n
    sections: dict[str, list[_Sentence]] = {w: [] for w in top}
    sections["more"] = []
    for sentence in chosen:
        home = next((w for w in top if seed.mentions(sentence, w)), "more")
        sections[home].append(sentence)
    parts = [_TITLES[style].format(**fill), rng.choice(_INTROS[style]).format(**fill)]
    for word, members in sections.items():
        if not members:
            continue
        body = " ".join(s.text for s in sorted(members, key=lambda s: s.position))
        label = _cap(seed.display(word)) if word != "more" else "Further Details"
        if style == "qa_guide":
            ask = f'What should a student know about "{seed.display(word)}"?' if word != "more" else "What else does the topic involve?"
            parts.append(f"Question: {ask}\nAnswer: {body}")
        elif style in _SECTION_HEADINGS:
            parts.append(f"{_SECTION_HEADINGS[style].format(W=label)}\n\n{body}")
        else:
            parts.append(body)
    parts.append(_RECAPS[style].format(key=ranked[0].text, **fill))
    text = "\n\n".join(parts)
    return text if text[-1] in ".!?" else text + "."


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


# --- Restruct tasks --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Blank:
    sentence: _Sentence
    token: str
    kind: str  # year | number | name | word
    start: int
    end: int


def _blanks(seed: _Seed, sentences: Sequence[_Sentence]) -> list[_Blank]:
    out: list[_Blank] = []
    for sentence in sentences:
        for m in _TOKEN.finditer(sentence.text):
            token, before = m.group(0), sentence.text[max(0, m.start() - 2) : m.start()]
            if token[0].isdigit():
                kind = "year" if re.fullmatch(r"1[0-9]{3}|20[0-9]{2}", token) else "number"
            elif token[0].isupper():
                # a name, unless it starts the sentence (or a quote or a clause after a colon)
                if m.start() == 0 or before.strip() in (":", '"', "“", "(") or (" " not in token and (token.lower() in _STOP or len(token) < 3)):
                    continue
                kind = "name"
            elif len(token) >= 5 and _is_content(token):
                kind = "word"
            else:
                continue
            out.append(_Blank(sentence, token, kind, m.start(), m.end()))
    return out


def _pools(seed: _Seed) -> dict[str, list[str]]:
    """Distinct tokens of each kind across the seed, in order of first appearance."""
    seen: dict[str, dict[str, str]] = {"year": {}, "number": {}, "name": {}, "word": {}}
    for blank in _blanks(seed, seed.sentences):
        seen[blank.kind].setdefault(blank.token.lower(), blank.token)
    return {kind: list(tokens.values()) for kind, tokens in seen.items()}


def _short(sentences: list[_Sentence]) -> list[_Sentence]:
    return [s for s in sentences if len(s.words) <= _MAX_BLANK_WORDS]


def _stem(token: str) -> str:
    t = token.lower().replace(",", "")
    for suffix in ("ing", "ed", "es", "s"):
        if t.endswith(suffix) and len(t) - len(suffix) >= 3:
            return t[: -len(suffix)]
    return t


def _shape(token: str) -> str:
    """A rough word class from the ending, so that distractors look like the answer (a past
    tense for a past tense, a plural for a plural)."""
    t = token.lower()
    for suffix in ("ing", "ed", "ly", "tion"):
        if t.endswith(suffix):
            return suffix
    return "s" if t.endswith("s") and not t.endswith(("ss", "is", "us")) else ""


def _blank_text(blank: _Blank) -> str:
    s = blank.sentence.text
    return f"{s[: blank.start]}____{s[blank.end :]}"


def _mcq(seed: _Seed, rng: random.Random) -> dict[str, Any]:
    priority = {"year": 0, "number": 0, "name": 1, "word": 2}
    pools = _pools(seed)
    candidates: list[tuple[_Blank, list[str]]] = []
    for blank in _blanks(seed, _short(seed.ranked())[:8]):
        in_sentence = {_stem(t) for t in _TOKEN.findall(blank.sentence.text)}
        others = [t for t in pools[blank.kind] if _stem(t) not in in_sentence and _stem(t) != _stem(blank.token)]
        distinct = list({_stem(t): t for t in others}.values())
        alike = [t for t in distinct if _shape(t) == _shape(blank.token)]
        distinct = alike if len(alike) >= 3 else distinct
        if len(distinct) >= 3:
            candidates.append((blank, distinct))
    if not candidates:
        raise PermanentError("seed text too short for a multiple-choice question (needs four words of one kind)")
    best = min(priority[b.kind] for b, _ in candidates)
    blank, distractors = rng.choice([c for c in candidates if priority[c[0].kind] == best][:6])
    options = [blank.token, *rng.sample(distractors, 3)]
    rng.shuffle(options)
    stem = _blank_text(blank).rstrip(".!?")
    return {"question": f'Which option best completes the sentence "{stem}"?', "options": options, "answer": blank.token}


def _cloze(seed: _Seed, rng: random.Random) -> dict[str, Any]:
    blanks = _blanks(seed, _short(seed.ranked())[:5])
    if not blanks:
        raise PermanentError("seed text has no sentence with a word, number or name to blank")
    blank = rng.choice(blanks)
    return {"text": _blank_text(blank), "answer": blank.token}


def _qa(seed: _Seed, rng: random.Random) -> dict[str, Any]:
    ranked = seed.ranked()
    if not ranked:
        raise PermanentError("seed text has no complete sentences to ask about")
    definitions = []
    for sentence in ranked[:12]:
        m = _DEFINITION.match(sentence.text)
        first = m.group(1).split()[0] if m else ""
        if m and first.lower() not in _PRONOUNS and (first in ("The", "A", "An") or first.lower() not in _STOP):
            definitions.append((sentence, m))
    if definitions:
        sentence, m = rng.choice(definitions[:4])
        subject = m.group(1)
        first = subject.split()[0]
        if first.lower() in _STOP:
            subject = first.lower() + subject[len(first) :]
        return {"question": f"What {m.group(2)} {subject}?", "answer": sentence.text}
    if not seed.freq:
        return {"question": "What does the text say?", "answer": ranked[0].text}
    word = seed.top_words(1)[0]
    sentence = next((s for s in ranked if seed.mentions(s, word)), ranked[0])
    return {"question": f'What does the text say about "{seed.display(word)}"?', "answer": sentence.text}


def _summary(seed: _Seed, rng: random.Random) -> dict[str, Any]:
    lead: list[str] = []
    for sentence in seed.usable:
        lead.append(sentence.text)
        if len(lead) >= 3 or sum(len(s.split()) for s in lead) >= 45:
            break
    if not lead:
        raise PermanentError("seed text has no complete sentences to summarize")
    return {"summary": " ".join(lead)}


# --- paraphrase ------------------------------------------------------------------------------


def paraphrase(text: str, rng: random.Random) -> str:
    """Clause reordering where a sentence has one subordinate clause, then synonym swaps; a text that
    neither changes (short exam items often do not) is restated with its sentences reordered."""
    lines = []
    for line in text.split("\n"):
        sentences = split_sentences(line) if line.strip() else []
        lines.append(" ".join(_swap_words(_reorder(s), rng) for s in sentences))
    out = "\n".join(lines).strip()
    return out if out.split() != text.split() else _restate(text)


def _restate(text: str) -> str:
    """"Q? A" -> "A (in answer to: Q?)": other n-grams at the seams, the same content."""
    sentences = split_sentences(" ".join(text.split()))
    if len(sentences) < 2:
        return f"Put differently: {text.strip()}"
    return f"{_cap(' '.join(sentences[1:]))} (in answer to: {sentences[0]})"


def _reorder(sentence: str) -> str:
    m = _SUB_FIRST.match(sentence)
    if m:  # "If it rains, we stay in." -> "We stay in if it rains."
        conj, sub, main, end = m.groups()
        return f"{_cap(main)} {conj.lower()} {sub}{end}"
    m = _SUB_LAST.match(sentence)
    if m:  # "We stay in if it rains." -> "If it rains, we stay in."
        main, conj, sub, end = m.groups()
        first = main.split()[0]
        if first.lower() in _STOP and first != "I":
            main = first.lower() + main[len(first) :]
        return f"{_cap(conj)} {sub}, {main}{end}"
    return sentence


def _swap_words(sentence: str, rng: random.Random) -> str:
    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        repl = _SYNONYMS.get(word.lower())
        if repl is None or rng.random() >= 0.75:
            return word
        if word.isupper() and len(word) > 1:
            return repl.upper()
        return _cap(repl) if word[0].isupper() else repl

    return _WORD.sub(swap, sentence)
