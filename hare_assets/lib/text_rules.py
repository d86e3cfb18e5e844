"""HARE D1 heuristics: edits that repair a document and rules that remove it.

`clean_document` first applies the edits a source asks for (boilerplate markers,
WikiText/AG News detokenisation, personal-information masking, link stripping,
dangling-tail trimming) and then the removal rules in a fixed order; the first
rule that fails names the removal reason. Everything here is plain Python and
numpy so it runs the same inside and outside Dagster.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hare_assets.lib.profile import Boilerplate, CleanConfig, QualityRules

# --- edits -----------------------------------------------------------------------------------

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b")
PHONE = re.compile(
    r"(?:(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,3}\b)"  # +1 415 555 0134
    r"|(?:(?<!\w)\(\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}\b)"  # (020) 7946 0018, (415) 555-0134
    r"|(?:\b\d{3}[.-]\d{3}[.-]\d{4}\b)"  # 415-555-0134
    r"|(?:(?<![\w.,])0\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}\b)"  # 020 7946 0321 (national trunk prefix)
    r"|(?:\b555[ .-]\d{4}\b)"  # 555-0199
)
URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'\)\]]+", re.IGNORECASE)
_TRAILING_PUNCT = ".,;:!?"

PII_MASKS = (("email", EMAIL, "<EMAIL>"), ("ip_address", IPV4, "<IP_ADDRESS>"), ("phone", PHONE, "<PHONE>"))

_WIKITEXT = (
    (re.compile(r" @([-.,])@ "), r"\1"),
    (re.compile(r"^ *(=+) *(.*?) *\1 *$", re.MULTILINE), r"\2"),  # " = = Heading = = " -> "Heading"
    (re.compile(r" ([.,;:!?)\]}'%])"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)\b"), r"\1"),
    (re.compile(r"^ +| +$", re.MULTILINE), ""),
)
_AGNEWS_ENTITY = re.compile(r"&?#(\d{2,5});")
_AGNEWS_APOSTROPHE = re.compile(r" ?&?#39;")
_AGNEWS_QUOTE = re.compile(r"(?<![&\w])quot;")

TERMINAL = ('.', '!', '?', '"', "'", "”", "’", "»", ")", "]", "…", ":", ";")


def strip_boilerplate(text: str, markers: Boilerplate) -> tuple[str, bool]:
    """Keep the text between the first start-marker line and the next end-marker line."""
    start_at, end_at = 0, len(text)
    if markers.start:
        m = re.search(markers.start, text, re.MULTILINE)
        if m:
            newline = text.find("\n", m.end())
            start_at = len(text) if newline < 0 else newline + 1
    if markers.end:
        m = re.compile(markers.end, re.MULTILINE).search(text, start_at)
        if m:
            end_at = text.rfind("\n", 0, m.start()) + 1
    if (start_at, end_at) == (0, len(text)):
        return text, False
    return text[start_at:end_at], True


def detokenize(text: str, style: str) -> str:
    if style == "wikitext":
        for pattern, repl in _WIKITEXT:
            text = pattern.sub(repl, text)
        return text
    if style == "agnews":  # "#39;" entities with the ampersand lost, backslashes for line breaks
        text = _AGNEWS_APOSTROPHE.sub("'", text.replace("\\", " "))
        text = _AGNEWS_QUOTE.sub('"', _AGNEWS_ENTITY.sub(lambda m: chr(int(m.group(1))), text))
        return html.unescape(re.sub(r" {2,}", " ", text))
    raise ValueError(f"unknown detokenize style {style!r}")


def mask_pii(text: str) -> tuple[str, list[str]]:
    found = []
    for kind, pattern, mask in PII_MASKS:
        text, n = pattern.subn(mask, text)
        if n:
            found.append(kind)
    return text, found


def find_pii(text: str) -> list[str]:
    return [kind for kind, pattern, _ in PII_MASKS if pattern.search(text)]


def strip_links(text: str) -> tuple[str, int]:
    def keep_punct(m: re.Match[str]) -> str:
        url = m.group(0)
        tail = len(url) - len(url.rstrip(_TRAILING_PUNCT))
        return url[len(url) - tail :] if tail else ""

    text, n = URL.subn(keep_punct, text)
    if n:
        text = re.sub(r"\(\s*\)|\[\s*\]", "", text)
        text = re.sub(r"[ \t]{2,}", " ", text)
        text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return text, n


def tidy_whitespace(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


# --- language ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_scores(text: str, sample_chars: int) -> list[tuple[str, float]]:
    """py3langid probabilities, best first, on a sample: the start and the middle of long texts."""
    if len(text) > sample_chars:
        half = sample_chars // 2
        mid = len(text) // 2
        text = text[:half] + "\n" + text[mid : mid + half]
    return [(lang, float(prob)) for lang, prob in _language_identifier().rank(text)]


# --- quality rules ------------------------------------------------------------------------------

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "●", "○", "▪", "‣", "⁃", "◦", "-", "*", "·", "–")
_WORD = re.compile(r"\S+")
_ALPHA_WORD = re.compile(r"(?<!\S)\S*?[^\W\d_]\S*")  # a whitespace-delimited word with a letter
_JAVASCRIPT = re.compile(r"javascript", re.IGNORECASE)
_POLICY = re.compile(
    r"terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies|enable cookies", re.IGNORECASE
)
_LOREM = re.compile(r"lorem ipsum", re.IGNORECASE)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash of 64-bit integers."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def ngram_hashes(word_ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every run of n consecutive word ids (order-sensitive)."""
    count = len(word_ids) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc = _mix(acc ^ word_ids[k : k + count])
    return acc


def _duplicate_chars(lines: list[str]) -> tuple[float, float]:
    """Share of lines (or paragraphs) that repeat an earlier one, by count and by characters."""
    seen: set[str] = set()
    dup, dup_chars, total_chars = 0, 0, 0
    for line in lines:
        total_chars += len(line)
        if line in seen:
            dup += 1
            dup_chars += len(line)
        else:
            seen.add(line)
    return dup / max(1, len(lines)), dup_chars / max(1, total_chars)


def _ngram_char_ratios(words: list[str], rules: QualityRules) -> tuple[str, float, float] | None:
    """Gopher repetition over word n-grams; returns (reason, value, bound) of the first violation.

    n-gram hashes are extended one word at a time (the hash of an n-gram is the mix of its
    (n-1)-gram prefix hash and its last word), so all sizes cost one pass each.
    """
    top_bounds, dup_bounds = rules.max_top_ngram_char_ratio, rules.max_duplicate_ngram_char_ratio
    sizes = sorted({*top_bounds, *dup_bounds})
    if not sizes or len(words) < 2:
        return None
    vocab: dict[str, int] = {}
    ids = _mix(np.fromiter((vocab.setdefault(w.lower(), len(vocab)) for w in words), dtype=np.uint64, count=len(words)) + np.uint64(1))
    if len(vocab) == len(words):
        return None  # no word repeats, so no n-gram can
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    total = int(lengths.sum())
    csum = np.concatenate(([0], np.cumsum(lengths)))
    hashes = _mix(ids)  # the 1-gram hashes, as in ngram_hashes (an XOR of raw ids would be order-blind)
    found: dict[int, tuple[str, float, float]] = {}
    with np.errstate(over="ignore"):
        for n in range(2, sizes[-1] + 1):
            count = len(words) - n + 1
            if count <= 0:
                break
            hashes = _mix(hashes[:count] ^ ids[n - 1 : n - 1 + count])
            if n not in top_bounds and n not in dup_bounds:
                continue
            uniq, first, inverse, counts = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
            if len(uniq) == count:
                break  # every n-gram is unique: longer ones are too
            if n in top_bounds:
                top = counts.argmax()
                start = first[top]
                ratio = float(counts[top] * (csum[start + n] - csum[start]) / total)
                if ratio > top_bounds[n]:
                    found[n] = (f"top_{n}gram_repetition", ratio, top_bounds[n])
            if n in dup_bounds:
                starts = np.flatnonzero(counts[inverse] > 1)
                cover = np.zeros(len(words) + 1, dtype=np.int32)  # words inside a repeated n-gram
                np.add.at(cover, starts, 1)
                np.add.at(cover, starts + n, -1)
                ratio = float(lengths[np.cumsum(cover[:-1]) > 0].sum() / total)
                if ratio > dup_bounds[n]:
                    found.setdefault(100 + n, (f"duplicate_{n}gram_repetition", ratio, dup_bounds[n]))
    # Report in Gopher's order: top n-gram rules by n, then duplicate n-gram rules by n.
    return found[min(found)] if found else None


def quality_violation(text: str, rules: QualityRules) -> tuple[str, str] | None:
    """First Gopher/C4 rule the text breaks, as (reason, detail), or None."""
    words = _WORD.findall(text)
    n_words = len(words)
    if rules.min_words is not None and n_words < rules.min_words:
        return "too_few_words", f"{n_words} words < {rules.min_words}"
    if rules.max_words is not None and n_words > rules.max_words:
        return "too_many_words", f"{n_words} words > {rules.max_words}"
    if n_words == 0:
        return "too_few_words", "no words"
    mean_len = sum(map(len, words)) / n_words
    if rules.min_mean_word_length is not None and mean_len < rules.min_mean_word_length:
        return "mean_word_length", f"mean word length {mean_len:.2f} < {rules.min_mean_word_length}"
    if rules.max_mean_word_length is not None and mean_len > rules.max_mean_word_length:
        return "mean_word_length", f"mean word length {mean_len:.2f} > {rules.max_mean_word_length}"
    if rules.max_symbol_word_ratio is not None:
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n_words > rules.max_symbol_word_ratio:
            return "symbol_ratio", f"{symbols} '#'/ellipsis per {n_words} words > {rules.max_symbol_word_ratio}"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    line_rules = len(lines) >= rules.min_lines_for_line_rules
    if line_rules and rules.max_bullet_line_ratio is not None:
        bullets = sum(line.startswith(BULLETS) for line in lines) / len(lines)
        if bullets > rules.max_bullet_line_ratio:
            return "bullet_lines", f"{bullets:.2f} of lines are bullets > {rules.max_bullet_line_ratio}"
    if line_rules and rules.max_ellipsis_line_ratio is not None:
        ellipsis = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
        if ellipsis > rules.max_ellipsis_line_ratio:
            return "ellipsis_lines", f"{ellipsis:.2f} of lines end in an ellipsis > {rules.max_ellipsis_line_ratio}"
    if rules.min_alpha_word_ratio is not None:
        alpha = len(_ALPHA_WORD.findall(text)) / n_words
        if alpha < rules.min_alpha_word_ratio:
            return "alpha_words", f"{alpha:.2f} of words have a letter < {rules.min_alpha_word_ratio}"
    if rules.min_stop_words is not None:
        stops = 0
        for w in words:
            if w.lower() in STOP_WORDS:
                stops += 1
                if stops >= rules.min_stop_words:
                    break
        if stops < rules.min_stop_words:
            return "stop_words", f"{stops} of {sorted(STOP_WORDS)} < {rules.min_stop_words}"
    if lines and rules.min_punctuated_char_ratio is not None:
        punctuated = sum(len(line) for line in lines if line.endswith(TERMINAL)) / sum(map(len, lines))
        if punctuated < rules.min_punctuated_char_ratio:
            return "unpunctuated_lines", f"{punctuated:.2f} of characters in lines ending a sentence < {rules.min_punctuated_char_ratio}"
    if rules.reject_lorem_ipsum and _LOREM.search(text):
        return "lorem_ipsum", "contains 'lorem ipsum' filler"
    if rules.reject_curly_bracket and "{" in text:
        return "curly_bracket", "contains '{' (code or templates)"
    if line_rules and rules.max_javascript_line_ratio is not None:
        js = sum(bool(_JAVASCRIPT.search(line)) for line in lines) / len(lines)
        if js > rules.max_javascript_line_ratio:
            return "javascript_lines", f"{js:.2f} of lines mention javascript > {rules.max_javascript_line_ratio}"
    if line_rules and rules.max_policy_line_ratio is not None:
        policy = sum(bool(_POLICY.search(line)) for line in lines) / len(lines)
        if policy > rules.max_policy_line_ratio:
            return "policy_lines", f"{policy:.2f} of lines are cookie/terms boilerplate > {rules.max_policy_line_ratio}"
    if rules.max_duplicate_line_ratio is not None or rules.max_duplicate_line_char_ratio is not None:
        dup, dup_chars = _duplicate_chars(lines)
        if rules.max_duplicate_line_ratio is not None and dup > rules.max_duplicate_line_ratio:
            return "duplicate_lines", f"{dup:.2f} of lines repeat > {rules.max_duplicate_line_ratio}"
        if rules.max_duplicate_line_char_ratio is not None and dup_chars > rules.max_duplicate_line_char_ratio:
            return "duplicate_line_chars", f"{dup_chars:.2f} of characters in repeated lines > {rules.max_duplicate_line_char_ratio}"
    if rules.max_duplicate_paragraph_ratio is not None or rules.max_duplicate_paragraph_char_ratio is not None:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        dup, dup_chars = _duplicate_chars(paragraphs)
        if rules.max_duplicate_paragraph_ratio is not None and dup > rules.max_duplicate_paragraph_ratio:
            return "duplicate_paragraphs", f"{dup:.2f} of paragraphs repeat > {rules.max_duplicate_paragraph_ratio}"
        if rules.max_duplicate_paragraph_char_ratio is not None and dup_chars > rules.max_duplicate_paragraph_char_ratio:
            return "duplicate_paragraph_chars", f"{dup_chars:.2f} of characters in repeated paragraphs > {rules.max_duplicate_paragraph_char_ratio}"
    violation = _ngram_char_ratios(words, rules)
    if violation:
        reason, value, bound = violation
        return reason, f"{value:.3f} of characters > {bound}"
    return None


# --- the whole pipeline for one document ---------------------------------------------------------


@dataclass
class Cleaned:
    text: str
    edits: list[str] = field(default_factory=list)
    reason: str | None = None
    detail: str = ""


def _ends_complete(text: str) -> bool:
    return text.rstrip().endswith(TERMINAL)


_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s|$)")


def cut_to_last_sentence(text: str) -> str | None:
    """A generated text that stopped at its token cap, without its unfinished last sentence (None when no
    sentence was finished). Generators stop mid-sentence at `max_tokens`; the finished part is a document."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else None


def _trim_dangling_tail(text: str, max_share: float) -> str | None:
    """Drop trailing lines that end no sentence (sign-offs, "Post a Comment", a cut-off line)
    when they hold at most `max_share` of the words; None when the text would lose more."""
    lines = text.rstrip().split("\n")
    total = len(_WORD.findall(text))
    dropped = 0
    while lines and not lines[-1].rstrip().endswith(TERMINAL):
        dropped += len(_WORD.findall(lines.pop()))
        if dropped > max_share * total:
            return None
    kept = "\n".join(lines).rstrip()
    return kept or None


def clean_document(
    text: str,
    clean: CleanConfig,
    quality: QualityRules,
    boilerplate: Boilerplate | None = None,
    detokenize_style: str | None = None,
) -> Cleaned:
    """Apply the edits, then the removal rules; `reason` is None when the document is kept."""
    out = Cleaned(text)
    if boilerplate is not None:
        out.text, stripped = strip_boilerplate(out.text, boilerplate)
        if stripped:
            out.edits.append("boilerplate")
    if detokenize_style:
        out.text = detokenize(out.text, detokenize_style)
    if clean.pii == "mask":
        out.text, kinds = mask_pii(out.text)
        out.edits.extend(f"pii_{k}" for k in kinds)
    elif clean.pii == "drop":
        kinds = find_pii(out.text)
        if kinds:
            out.reason, out.detail = "personal_information", f"contains {', '.join(kinds)}"
            return out
    if clean.strip_links:
        out.text, n = strip_links(out.text)
        if n:
            out.edits.append("links")
    out.text = tidy_whitespace(out.text)
    if not out.text:
        out.reason, out.detail = "empty_after_cleaning", "nothing left after the edits"
        return out

    inc = clean.incomplete
    if inc.enabled:
        n_words = len(_WORD.findall(out.text))
        if n_words < inc.min_words:
            out.reason, out.detail = "incomplete", f"fragment of {n_words} words < {inc.min_words}"
            return out
        if not _ends_complete(out.text):
            trimmed = _trim_dangling_tail(out.text, inc.max_tail_share) if n_words >= inc.trim_tail_min_words else None
            if trimmed:
                out.text = trimmed
                out.edits.append("dangling_tail")
            else:
                tail = out.text.rstrip()[-60:].replace("\n", " ")
                out.reason, out.detail = "incomplete", f"ends mid-sentence: …{tail}"
                return out

    lang = clean.language
    if lang.keep:
        scores = language_scores(out.text, lang.sample_chars)
        kept_mass = sum(p for code, p in scores if code in lang.keep)
        if scores[0][0] not in lang.keep and kept_mass < lang.min_score:
            out.reason = "non_english" if lang.keep == ["en"] else "language"
            out.detail = f"{scores[0][0]} ({scores[0][1]:.2f}); {'+'.join(lang.keep)} {kept_mass:.2f} < {lang.min_score}"
            return out

    violation = quality_violation(out.text, quality)
    if violation:
        out.reason, out.detail = violation
    return out
