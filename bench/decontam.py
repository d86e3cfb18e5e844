"""Benchmark decontamination of this project against lm-eval's janitor and datatrove's n-gram filter, side by side.

    .venv/bin/python bench/decontam.py [--runs 3] [--json figures.json] [--keep]
    .venv/bin/python bench/decontam.py --runs 1 --sides hare,janitor      # a quick look without datatrove

1. Creates the peers' virtualenv `.venv-bench` when it is missing (datatrove lives there, never in .venv).
2. Loads all six Open LLM Leaderboard v1 benchmarks through this project's registry from
   `<data>/benchmarks` and exports every item's *views* (the texts our n-gram index sees) once;
   every side indexes exactly these texts, each view on its own.
3. Exports the real corpora once with this project's ingest (profile `local-corpora`, `list_shards` +
   `read_shard`) to per-source JSONL, plus `99_planted.jsonl`: real benchmark items planted into
   slices of real corpus documents (real corpora hold almost no true hits). Every side reads these files.
4. Per repetition and side, runs a subprocess pinned to one CPU (this file with `--side`):
   `hare` (NgramIndex.build + scan_batch, strict and the default coverage rule) and `janitor`
   (lm-eval's Janitor, pure Python) in .venv; `datatrove` (NGramsDecontIndexer fed our views,
   NGramsDecontFilter unchanged) in .venv-bench. The parent samples the PSS of each subprocess tree.
5. Prints medians (index build, scan MB/s per core, peak memory), ratios ours / each peer, and the sets of
   documents with a hit compared between ours (strict = any verified 13-gram) and each peer, planted and
   real documents apart, with examples of the disagreements and their cause.
6. "Same input normalisation" (skip with `--no-common`): every view and document goes once more through one
   shared normaliser (`common_normalise`, a fixed point of all three sides' own normalisations, checked per
   text), every side runs once more, unchanged and untimed, on those texts, and the hit sets are compared
   again: what is left of a difference is matching (and datatrove's spaCy word splitting), not normalisation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shutil
import string
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import psutil
from _common import (
    add_common_arguments,
    BENCH_PYTHON,
    HARE_PYTHON,
    OFFLINE,
    ONE_THREAD,
    clean_env,
    drop_scratch,
    ensure_bench_venv,
    export_corpora,
    log,
    median,
    pinned_cpu,
    ratio,
    run_sampled,
    source_of,
    write_figures,
    write_jsonl_docs,
)

SIDES = ("hare", "janitor", "datatrove")
PYTHONS = {"hare": HARE_PYTHON, "janitor": HARE_PYTHON, "datatrove": BENCH_PYTHON}
PEERS = ("janitor", "datatrove")
TARGET_RATIO = 5.0
PLANT_VARIANTS = ("view", "prompt", "case_punct")
JANITOR_SHORT = 200  # the Janitor's minimum_slice_length: a document of fewer characters comes back empty
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPAN_CHARS = 300
COMMON = "common_normalisation"  # the second comparison: every side gets the same normalised input


# --- the shared input normalisation of the second comparison ---------------------------------------------------

_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is str.isalnum() plus "_": this is every character but letters and digits
_DIGITS = re.compile(r"\d+")  # str patterns: Unicode decimal digits (category Nd), datatrove's \p{Nd}


def _common_once(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).lower()
        text = unicodedata.normalize("NFKC", "".join(c for c in unicodedata.normalize("NFD", text)
                                                     if unicodedata.category(c) != "Mn"))
    return " ".join(_DIGITS.sub("0", _NOT_ALNUM.sub(" ", text.lower())).split())


def common_normalise(text: str) -> str:
    """The input of the "same input normalisation" comparison, for documents and benchmark views alike: NFKC,
    lower-case, combining marks dropped (datatrove strips diacritics), every character that is not a letter or
    digit a space (curly quotes, dashes, `_`, ...), every run of digits one "0" (datatrove folds numbers),
    whitespace collapsed; repeated until nothing changes. What is left is (nearly always) a fixed point of the
    three sides' own normalisations, so only their matching and word splitting can differ (checked per text)."""
    for _ in range(8):
        done = _common_once(text)
        if done == text:
            break
        text = done
    return text



# --- the child: one side, in its own process ----------------------------------------------------------------


def _read_views(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _read_corpus(folder: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                ids.append(rec["id"])
                texts.append(rec["text"])
    return ids, texts


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def side_hare(args: argparse.Namespace, t0: float) -> dict:
    import numpy as np

    from hare_assets.lib.benchmarks import BenchmarkItem
    from hare_assets.lib.decontam import DecontamRule, NgramIndex, scan, scan_batch

    timings = {"import_s": time.perf_counter() - t0}
    items = [BenchmarkItem(r["benchmark"], r["split"], r["item_id"], "", (), None, "", tuple(r["views"]))
             for r in _read_views(args.views)]
    t = time.perf_counter()
    index = NgramIndex.build(items, args.n)
    timings["index_s"] = time.perf_counter() - t
    maxrss_index = _maxrss_mib()
    t = time.perf_counter()
    ids, texts = _read_corpus(args.corpus)
    timings["read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    strict = scan_batch(texts, index, DecontamRule(args.n, "strict"))
    timings["scan_s"] = time.perf_counter() - t
    t = time.perf_counter()
    coverage = scan_batch(texts, index, DecontamRule(args.n))  # the default rule: coverage >= 0.5
    timings["scan_coverage_s"] = time.perf_counter() - t

    hits = {}
    for i, found in strict.hits.items():  # after the clock: what a report needs to explain a hit
        detail = scan(texts[i], index)
        a, b = detail.spans[0]
        hits[ids[i]] = {"items": [f"{h.benchmark}:{h.item_id}" for h in found[:3]], "ngram": detail.ngrams[0],
                        "span": texts[i][a:b][:SPAN_CHARS], "coverage": round(float(coverage.rates[i]), 4)}
    return {"timings": timings, "hits": hits, "maxrss_index_mib": maxrss_index,
            "flagged_coverage": [ids[i] for i in np.flatnonzero(coverage.contaminated)],
            "index": index.stats(), "documents": len(texts)}


def side_janitor(args: argparse.Namespace, t0: float) -> dict:
    import itertools

    from lm_eval.decontamination.janitor import JANITOR_CPP, Janitor

    class NotingJanitor(Janitor):
        """lm-eval's Janitor unchanged, plus a note of the first contaminated n-gram `clean_python` finds
        (its output alone cannot tell a hit from a document under 200 characters)."""

        first = None

        def _split_chunks(self, dirty_string, dirty_parts):
            parts = iter(dirty_parts)
            self.first = next(parts, None)
            return super()._split_chunks(dirty_string, parts if self.first is None else itertools.chain((self.first,), parts))

    timings = {"import_s": time.perf_counter() - t0}
    views = [v for r in _read_views(args.views) for v in r["views"]]
    janitor = NotingJanitor(ngram_n=args.n)
    t = time.perf_counter()
    for view in views:  # register_contaminant() = this + a warning printed on every call in Python mode
        janitor.register_contaminant_python(view)
    timings["index_s"] = time.perf_counter() - t
    maxrss_index = _maxrss_mib()
    t = time.perf_counter()
    ids, texts = _read_corpus(args.corpus)
    timings["read_s"] = time.perf_counter() - t
    found, changed = {}, []
    t = time.perf_counter()
    for k, text in enumerate(texts):  # clean() = clean_python() + a warning printed on every call
        chunks = janitor.clean_python(text)
        if janitor.first is not None:
            found[k] = janitor.first
        if chunks != [text]:
            changed.append(k)
    timings["scan_s"] = time.perf_counter() - t

    hits = {}
    for k, (_, start, end) in found.items():
        raw = texts[k][start : end + 1]
        hits[ids[k]] = {"ngram": janitor.normalize_string(raw), "span": raw[:SPAN_CHARS]}
    return {"timings": timings, "hits": hits, "maxrss_index_mib": maxrss_index, "changed": [ids[k] for k in changed],
            "index": {"ngrams": len(janitor.dirt_ngrams), "cpp": JANITOR_CPP}, "documents": len(texts)}


def side_datatrove(args: argparse.Namespace, t0: float) -> dict:
    from collections import defaultdict as _defaultdict

    import numpy as np
    from datatrove.data import Document
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.pipeline.readers import JsonlReader

    class OfflineNGramsDecontIndexer(NGramsDecontIndexer):
        """datatrove's indexer fed our exported views as its input documents. `run` is upstream's
        `NGramsDecontIndexer.run` without the lighteval half (which reads tasks from the hub): the same
        `compute_hashes`, the same `<task>.index.hashes` files."""

        def __new__(cls, *args, **kwargs):
            # PipelineStep.__new__ checks `_requires_dependencies` along the MRO: lighteval, needed only by
            # the part of run() that is not used here.
            return object.__new__(cls)

        def run(self, data=None, rank: int = 0, world_size: int = 1):
            hashes = _defaultdict(set)
            for doc in data:
                if not self.config.find_query_ngrams and "query" not in doc.metadata:
                    raise ValueError("only_label_ngrams is False but could not find 'query' field in documents metadata")
                hashes[doc.metadata.get("task", "input")].update(self.compute_hashes(doc.text, doc.metadata.get("query", None)))
            for task_name, task_hashes in hashes.items():
                hashes_array = np.array(list(task_hashes), dtype=self.config.hash_config.np_descr)
                with self.output_folder.open(f"{task_name.replace(' ', '_')}.index.hashes", mode="wb") as f:
                    if self.output_folder.is_local():
                        hashes_array.tofile(f)
                    else:
                        f.write(hashes_array.tobytes())

    timings = {"import_s": time.perf_counter() - t0}
    watch = _watch_datatrove() if args.common_check else None
    config = NGramsDecontConfig(n_grams=args.n)
    maxrss_index = None
    if not args.reuse_index:
        records = _read_views(args.views)
        shutil.rmtree(args.index_dir, ignore_errors=True)
        if watch:
            watch["phase"] = "views"
        t = time.perf_counter()
        # each view is a "label" with no query: all its n-grams are indexed (like find_query_ngrams=True
        # with the question as query), and no n-gram spans two views
        OfflineNGramsDecontIndexer(str(args.index_dir), config=config).run(
            Document(text=v, id=f"{r['item_id']}#{j}", metadata={"task": r["benchmark"], "query": None})
            for r in records for j, v in enumerate(r["views"]))
        timings["index_s"] = time.perf_counter() - t
        maxrss_index = _maxrss_mib()
        del records
        if watch:
            watch["phase"] = "warm-up"
    filt = NGramsDecontFilter(str(args.index_dir), config=config)
    filt.tokenizer.word_tokenize("load the word tokenizer before the clock")
    t = time.perf_counter()
    filt.load_index_hashes()
    timings["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    docs = list(JsonlReader(str(args.corpus)).run(None, 0, 1))
    timings["read_s"] = time.perf_counter() - t
    if watch:
        watch["phase"] = "docs"
    t = time.perf_counter()
    kept = sum(1 for _ in filt.run(iter(docs), 0, 1))
    timings["scan_s"] = time.perf_counter() - t

    hits = {d.id: {"ngram": d.metadata["contaminated_ngram"], "task": d.metadata["contaminated_task"]}
            for d in docs if "contaminated_ngram" in d.metadata}
    assert kept + len(hits) == len(docs), (kept, len(hits), len(docs))
    out = {"timings": timings, "hits": hits, "maxrss_index_mib": maxrss_index, "built_index": not args.reuse_index,
           "index": {"ngrams": len(filt._index_hashes), "files": sorted(p.name for p in args.index_dir.glob("*.index.hashes"))},
           "documents": len(docs)}
    if watch:
        out["common_check"] = {k: dict(watch[k]) for k in ("views", "docs")}
        out["common_check"]["split_words"] = watch["split_words"].most_common(40)
    return out


def _watch_datatrove() -> dict:
    """For the same-normalisation pass (`--common-check`): count the texts that datatrove's `simplify_text` or
    its spaCy word tokenizer still change (the input is already normalised, so ideally none) and the words
    spaCy splits. Wraps the two functions the indexer and the filter call; their results are unchanged."""
    import datatrove.pipeline.decont.n_grams as n_grams_module
    from datatrove.utils.typeshelper import Languages
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    watch = {"phase": "warm-up", "views": Counter(), "docs": Counter(), "warm-up": Counter(), "split_words": Counter()}
    simplify, tokenizer = n_grams_module.simplify_text, load_word_tokenizer(Languages.english)  # lru-cached: the one both steps use
    word_tokenize = tokenizer.word_tokenize

    def watched_simplify(text, *args, **kwargs):
        out = simplify(text, *args, **kwargs)
        counts = watch[watch["phase"]]
        counts["texts"] += 1
        counts["simplify_text_changed"] += out != text
        return out

    def watched_tokenize(text):
        tokens = word_tokenize(text)
        words = text.split()
        if tokens != words:
            watch[watch["phase"]]["tokens_not_words"] += 1
            if watch["phase"] != "warm-up":
                watch["split_words"].update(set(words) - set(tokens))  # spaCy splits words only, the same way everywhere
        return tokens

    n_grams_module.simplify_text = watched_simplify
    tokenizer.word_tokenize = watched_tokenize
    return watch


def explain_datatrove(args: argparse.Namespace) -> dict:
    """datatrove's normalised words of some texts, and which of their n-grams its index holds (for the report)."""
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
    from datatrove.utils.text import ngrams, simplify_text

    filt = NGramsDecontFilter(str(args.index_dir), config=NGramsDecontConfig(n_grams=args.n))
    filt.load_index_hashes()
    out = []
    for text in json.loads(args.views.read_text()):
        words = filt.tokenizer.word_tokenize(simplify_text(text, filt.config.norm_config))
        grams = [" ".join(g) for g in ngrams(words, args.n)]
        out.append({"words": words, "indexed": [g for g in grams if filt.hash_func(g) in filt._index_hashes]})
    return {"texts": out}


CHILDREN = {"hare": side_hare, "janitor": side_janitor, "datatrove": side_datatrove}


def child_main(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    if args.side == "datatrove-explain":
        result = explain_datatrove(args)
    else:
        result = CHILDREN[args.side](args, t0)
        result.update(side=args.side, pid=os.getpid(), maxrss_end_mib=_maxrss_mib())
    args.out.write_text(json.dumps(result), encoding="utf-8")


# --- the shared input ---------------------------------------------------------------------------------------


def export_views(data: Path, out: Path) -> dict:
    """Every item of the six leaderboard benchmarks through this project's registry, as JSONL
    {benchmark, split, item_id, views}; returns the items and counts."""
    from hare_assets.lib.benchmarks import load_items, load_registry
    from hare_assets.lib.scan_files import leaderboard_benchmarks

    specs = load_registry()
    names = leaderboard_benchmarks()
    items, info = [], {}
    for name in names:
        loaded = load_items(specs[name], data / "benchmarks")
        items += loaded
        info[name] = {"items": len(loaded), "views": sum(len(i.views) for i in loaded),
                      "splits": sorted({i.split for i in loaded}), "missing_splits": specs[name].missing_local_splits()}
    with out.open("w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps({"benchmark": it.benchmark, "split": it.split, "item_id": it.item_id, "views": list(it.views)},
                                ensure_ascii=False) + "\n")
    view_bytes = sum(len(v.encode("utf-8")) for it in items for v in it.views)
    return {"items": items, "per_benchmark": info, "views": sum(len(i.views) for i in items), "view_bytes": view_bytes}


def _render(item, variant: str, rng: random.Random) -> str:
    """How a leaked item looks: one of its indexed views verbatim; an evaluation prompt; or a view with
    case, punctuation and apostrophes changed (what normalisation must undo)."""
    gold = item.answer if isinstance(item.answer, int) and 0 <= item.answer < len(item.choices) else 0
    if variant == "view":
        return rng.choice(item.views)
    if variant == "prompt":
        if item.benchmark == "hellaswag":
            return f"{item.question}: {item.context} {item.choices[gold]}"
        if item.benchmark == "winogrande":
            return item.question.replace("_", item.choices[gold], 1)
        if isinstance(item.answer, str):  # gsm8k
            return f"Question: {item.question}\nAnswer: {item.answer}"
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices[: len(LETTERS)]))
        return f"Question: {item.question}\n{options}\nAnswer: {LETTERS[gold]}"
    words = rng.choice(item.views).split()  # case_punct
    words = [(w.upper() if r < 0.15 else w.capitalize() if r < 0.3 else w) for w, r in ((w, rng.random()) for w in words)]
    return " ".join((w.strip('.,;:?!"') if rng.random() < 0.5 else w).replace("'", "\u2019") for w in words)


def plant(items: list, hosts: list[str], per_benchmark: int, seed: int) -> list[dict]:
    """Reader-shaped documents: a slice of 80-240 words of a real document (>= 60 words) with one rendered
    benchmark item inserted at a word boundary; per benchmark, `per_benchmark` items x every variant."""
    from hare_assets.lib.dedup import normalise_for_matching

    rng = random.Random(seed)
    by_benchmark = defaultdict(list)
    for item in items:
        by_benchmark[item.benchmark].append(item)
    docs = []
    for name, pool in sorted(by_benchmark.items()):
        for item in rng.sample(pool, min(per_benchmark, len(pool))):
            for variant in PLANT_VARIANTS:
                text = _render(item, variant, rng)
                host = rng.choice(hosts).split()
                size = rng.randrange(80, 241)
                start = rng.randrange(max(1, len(host) - size))
                host = host[start : start + size]
                cut = rng.randrange(len(host) + 1)
                body = "\n".join(part for part in (" ".join(host[:cut]), text, " ".join(host[cut:])) if part)
                k = len(docs)
                meta = {"benchmark": name, "split": item.split, "item_id": item.item_id, "variant": variant,
                        "item_words": len(normalise_for_matching(text).split())}
                docs.append({"doc_id": f"planted{k:05d}", "source": "planted", "shard": f"{name}/{variant}", "row": k,
                             "text": body, "meta": json.dumps(meta)})
    return docs


# --- running the sides --------------------------------------------------------------------------------------


def run_side(side: str, paths: dict, work: Path, cpu: int | None, n: int, reuse_index: bool = False,
             common_check: bool = False) -> dict:
    out = work / f"{side}.json"
    cmd = [str(PYTHONS[side]), str(Path(__file__).resolve()), "--side", side, "--views", str(paths["views"]),
           "--corpus", str(paths["corpus"]), "--index-dir", str(paths["index"]), "--n", str(n), "--out", str(out)]
    if reuse_index:
        cmd.append("--reuse-index")
    if common_check:
        cmd.append("--common-check")
    env = {**clean_env(), **ONE_THREAD, **OFFLINE}
    done = run_sampled(cmd, env, work / f"{side}.log", cpu)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed with exit code {done.returncode}:\n{done.tail()}")
    result = json.loads(out.read_text())
    result.update(wall_s=done.wall_s, peak_mib=done.peak_mib, peak_kind=done.peak_kind, samples=done.samples,
                  maxrss_mib=done.maxrss_mib)
    return result


def explain_with_datatrove(texts: list[str], paths: dict, work: Path, n: int) -> list[dict]:
    if not texts:
        return []
    request, out = work / "explain-in.json", work / "explain-out.json"
    request.write_text(json.dumps(texts))
    cmd = [str(BENCH_PYTHON), str(Path(__file__).resolve()), "--side", "datatrove-explain", "--views", str(request),
           "--corpus", str(paths["corpus"]), "--index-dir", str(paths["index"]), "--n", str(n), "--out", str(out)]
    done = run_sampled(cmd, {**clean_env(), **OFFLINE}, work / "explain.log")
    if done.returncode != 0:
        raise SystemExit(f"datatrove-explain failed:\n{done.tail()}")
    return json.loads(out.read_text())["texts"]


# --- figures ------------------------------------------------------------------------------------------------


def side_figures(runs: list[dict], mb: float, n_docs: int) -> dict:
    t = lambda key: [r["timings"][key] for r in runs if key in r["timings"]]  # noqa: E731
    scan_s = median(t("scan_s"))
    fig = {
        "index_s": median(t("index_s")), "index_runs": len(t("index_s")), "load_s": median(t("load_s")),
        "read_s": median(t("read_s")), "scan_s": scan_s, "scan_mb_s": mb / scan_s, "scan_docs_s": n_docs / scan_s,
        "read_scan_mb_s": mb / median([r["timings"]["read_s"] + r["timings"]["scan_s"] for r in runs]),
        "import_s": median(t("import_s")), "process_wall_s": median([r["wall_s"] for r in runs]),
        "peak_mib": median([r["peak_mib"] for r in runs]), "peak_mib_max": max(r["peak_mib"] for r in runs),
        "maxrss_mib": median([r["maxrss_mib"] for r in runs]), "peak_kind": runs[0]["peak_kind"],
        "maxrss_index_mib": median([r["maxrss_index_mib"] for r in runs if r.get("maxrss_index_mib")]),
        "index": runs[0]["index"],
        "runs": [{k: r.get(k) for k in ("timings", "wall_s", "peak_mib", "maxrss_mib", "maxrss_index_mib", "samples")} for r in runs],
    }
    if t("scan_coverage_s"):
        fig["scan_coverage_s"] = median(t("scan_coverage_s"))
        fig["scan_coverage_mb_s"] = mb / fig["scan_coverage_s"]
    return fig


def split_counts(ids: set[str]) -> dict[str, int]:
    planted = sum(source_of(i) == "planted" for i in ids)
    return {"planted": planted, "real": len(ids) - planted, "total": len(ids)}


_JANITOR_TABLE = str.maketrans(string.ascii_lowercase + string.ascii_uppercase, string.ascii_lowercase * 2, string.punctuation)
_INNER_PUNCT = re.compile(r"\w[^\w\s]+\w")


def janitor_cause(side_hit: str, span: str) -> str:
    """Why lm-eval's janitor and ours disagree on a stretch of text (the hitting side's matched text)."""
    tokens = span.split()
    normalised = [t.translate(_JANITOR_TABLE) for t in tokens]
    if side_hit == "hare":
        if any(not t for t in normalised):
            return ("a whitespace-separated punctuation token (e.g. ' - ', WikiText ' @-@ ', ' , '): the janitor splits "
                    "documents on whitespace before stripping punctuation, so the document n-gram holds an empty word "
                    "while the registered one does not")
        if any(not t.isascii() for t in normalised):
            return "non-ASCII characters: the janitor lower-cases and strips ASCII only (curly quotes, dashes, accents stay)"
        if any(_INNER_PUNCT.search(t) for t in tokens):
            return ("punctuation inside words: the janitor deletes it ('don't' -> 'dont', 'U.S.' -> 'us'), ours splits "
                    "there, so the shared stretch has fewer than n janitor words or the words differ")
        return "other (see the example)"
    if any(_INNER_PUNCT.search(t) for t in tokens):
        return "punctuation inside words: the janitor joins the parts ('3.5' -> '35'), ours splits them into two words"
    if any(not t.isascii() for t in tokens):
        return "non-ASCII characters: ours applies NFKC and drops every non-word character, the janitor keeps them"
    return "other (see the example)"


def datatrove_cause(side_hit: str, span: str, dt_words: list[str], indexed: list[str], n: int) -> str:
    """Why datatrove and ours disagree, from the hitting side's matched text and datatrove's words of it."""
    from hare_assets.lib.dedup import normalise_for_matching

    ours = normalise_for_matching(span).split()
    if side_hit == "hare":
        if indexed:
            return "datatrove's index holds an n-gram of this stretch: it stops at the first hit elsewhere or reads the document differently"
        if len(dt_words) < n <= len(ours):
            return f"the stretch is {len(ours)} words for ours but {len(dt_words)} for datatrove (numbers folded, spaCy tokens)"
        if re.search(r"\d", span):
            return "numbers: datatrove folds every number to '0' (and '3.5' to one word), so its n-grams differ from the item's"
        return "tokenisation: spaCy splits the simplified text differently from the item's view (see the example)"
    if re.search(r"\d", span):
        return "numbers: datatrove folds every number to '0', so a stretch with other numbers matches a benchmark n-gram"
    if any(c in span for c in "_"):
        return "underscore: datatrove treats '_' as punctuation, ours as a word character"
    if not span.isascii():
        return "diacritics/unicode: datatrove strips combining marks, ours keeps them (NFKC)"
    return "other (see the example)"


def compare(ours: dict, peer_name: str, peer: dict, docs: dict[str, dict], paths: dict, work: Path, n: int,
            examples: int) -> dict:
    o, p = set(ours["hits"]), set(peer["hits"])
    only_o, only_p = sorted(o - p), sorted(p - o)
    result = {"ours": split_counts(o), "peer": split_counts(p), "both": split_counts(o & p),
              "only_ours": split_counts(set(only_o)), "only_peer": split_counts(set(only_p)),
              "identical": o == p, "only_ours_ids": only_o, "only_peer_ids": only_p}
    rows = [("hare", i, ours["hits"][i]["span"]) for i in only_o] + [(peer_name, i, peer["hits"][i]["span" if peer_name == "janitor" else "ngram"]) for i in only_p]
    explained = []
    dt_info = explain_with_datatrove([r[2] for r in rows], paths, work, n) if peer_name == "datatrove" else []
    for k, (side_hit, doc_id, span) in enumerate(rows):
        if peer_name == "janitor":
            cause = janitor_cause(side_hit, span)
        elif dt_info:
            cause = datatrove_cause(side_hit, span, dt_info[k]["words"], dt_info[k]["indexed"], n)
        else:
            cause = "not analysed"
        row = {"hit_by": side_hit, "id": doc_id, "source": source_of(doc_id), "cause": cause, "text": " ".join(span.split())[:200]}
        meta = docs[doc_id]["meta"] if docs[doc_id]["source"] == "planted" else None
        if meta:
            row["planted"] = meta
        if side_hit == "hare":
            row["ours_items"] = ours["hits"][doc_id]["items"]
        else:
            row["peer_ngram"] = peer["hits"][doc_id]["ngram"]
        if dt_info:
            row["datatrove_words"] = " ".join(dt_info[k]["words"])[:200]
        explained.append(row)
    result["causes"] = dict(Counter(r["cause"] for r in explained).most_common())
    result["examples"] = []
    for cause in result["causes"]:  # a few of each cause
        result["examples"] += [r for r in explained if r["cause"] == cause][:examples]
    result["disagreements"] = explained
    return result


# --- the second comparison: the same input normalisation on every side ------------------------------------------


def common_inputs(paths: dict, docs: dict[str, dict], cpaths: dict) -> tuple[dict[str, dict], dict]:
    """The exported views and corpus through `common_normalise`, in the same layout (same ids) under `cpaths`;
    returns the normalised documents and, per side that can be checked here, how many texts its own
    normalisation still changes (datatrove is checked in its child: `--common-check`)."""
    from hare_assets.lib.dedup import normalise_for_matching

    changed = {"views": Counter(), "docs": Counter()}

    def check(kind: str, text: str) -> None:
        c = changed[kind]
        c["texts"] += 1
        c["common_not_idempotent"] += common_normalise(text) != text
        c["ours_changes"] += normalise_for_matching(text) != text
        c["janitor_changes"] += text.translate(_JANITOR_TABLE) != text or " ".join(text.split()) != text
        c["empty"] += not text

    with paths["views"].open(encoding="utf-8") as src, cpaths["views"].open("w", encoding="utf-8") as dst:
        for line in src:
            record = json.loads(line)
            record["views"] = [common_normalise(v) for v in record["views"]]
            for v in record["views"]:
                check("views", v)
            dst.write(json.dumps(record, ensure_ascii=False) + "\n")
    by_source: dict[str, list[dict]] = defaultdict(list)
    for doc_id, d in docs.items():  # reader-shaped again, so write_jsonl_docs gives every document its old id
        text = common_normalise(d["text"])
        check("docs", text)
        by_source[d["source"]].append({"doc_id": doc_id.split("@", 1)[0], "source": d["source"], "shard": d["shard"],
                                       "row": d["row"], "text": text, "meta": json.dumps(d["meta"])})
    cpaths["corpus"].mkdir(parents=True, exist_ok=True)
    cdocs: dict[str, dict] = {}
    for k, (source, rows) in enumerate(by_source.items()):
        cdocs.update(write_jsonl_docs(cpaths["corpus"] / f"{k:02d}_{source}.jsonl", rows))
    assert cdocs.keys() == docs.keys(), "the normalised export must keep every document id"
    return cdocs, {k: dict(v) for k, v in changed.items()}


def _token_owner(words: list[str], tokens: list[str]) -> list[int] | None:
    """Per datatrove token: the whitespace word it is part of (spaCy only ever splits a word into pieces that
    concatenate to it), or None when the tokens are not such pieces of `words`."""
    owner, w, acc = [], 0, ""
    for token in tokens:
        if w >= len(words):
            return None
        acc += token
        owner.append(w)
        if acc == words[w]:
            w, acc = w + 1, ""
        elif not words[w].startswith(acc):
            return None
    return owner if w == len(words) and not acc else None


def _find(seq: list[str], sub: list[str]) -> int:
    for i in range(len(seq) - len(sub) + 1):
        if seq[i : i + len(sub)] == sub:
            return i
    return -1


def _stretch(text: str, tokens: list[str], gram: list[str]) -> dict | None:
    """Where datatrove's n-gram `gram` lies in a normalised text: the whitespace words its tokens come from,
    the words spaCy split there, and whether it starts or ends inside a word; None when it is not there."""
    words = text.split()
    owner = _token_owner(words, tokens)
    p = _find(tokens, gram)
    if owner is None or p < 0:
        return None
    a, b, n = owner[p], owner[p + len(gram) - 1], len(gram)
    pieces = Counter(owner)
    return {"words": words[a : b + 1],
            "split": {words[i]: " ".join(t for t, o in zip(tokens, owner) if o == i) for i in range(a, b + 1) if pieces[i] > 1},
            "partial": (p > 0 and owner[p - 1] == a) or (p + n < len(tokens) and owner[p + n] == b)}


def spacy_causes(rows: list[dict], cdocs: dict[str, dict], cpaths: dict, cwork: Path, n: int) -> None:
    """Why ours and datatrove disagree on documents that both read as the same normalised words. For a hit only
    datatrove has: its n-gram located in its spaCy tokens of the document and of the item's view that holds
    it (found among that benchmark's normalised views), each mapped back to the whitespace words ours (and the
    janitor) use. Fills `cause` and the details into each row."""
    views = defaultdict(list)
    with cpaths["views"].open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            views[r["benchmark"]] += [(r["item_id"], v) for v in r["views"]]
    texts, where = [], []
    for r in rows:
        where.append(len(texts))
        texts.append(cdocs[r["id"]]["text"])
        if r["hit_by"] == "datatrove":  # candidate views: the n-gram's characters, spaces aside, inside the view's
            squeezed = r["ngram"].replace(" ", "")
            r["_candidates"] = [(i, v) for i, v in views.get(r["task"], []) if squeezed in v.replace(" ", "")][:20]
            texts += [v for _, v in r["_candidates"]]
    info = explain_with_datatrove(texts, cpaths, cwork, n)
    for r, at in zip(rows, where):
        candidates = r.pop("_candidates", [])
        if r["hit_by"] == "hare":
            r["cause"] = ("unexplained: datatrove's index holds an n-gram of this document, yet its filter kept it"
                          if info[at]["indexed"] else "unexplained: ours' n-gram has no datatrove n-gram in the index")
            continue
        gram = r["ngram"].split()
        doc = _stretch(texts[at], info[at]["words"], gram)
        view = next(((i, st) for k, (i, v) in enumerate(candidates)
                     if (st := _stretch(v, info[at + 1 + k]["words"], gram)) is not None), None)
        if doc is None or view is None:
            r["cause"] = ("unexplained: datatrove's simplify_text still changes the text, or the n-gram's view was not "
                          "found among the benchmark's views")
            continue
        item, view = view
        r.update(item=item, doc_words=" ".join(doc["words"]), view_words=" ".join(view["words"]),
                 split_words={**view["split"], **doc["split"]})
        if doc["partial"] or view["partial"]:
            r["cause"] = "the n-gram starts or ends inside a word spaCy splits, so its first or last words are not whole words"
        elif doc["words"] != view["words"]:
            r["cause"] = ("the same spaCy tokens come from different words in the document and in the item's view "
                          "(e.g. 'can not' / 'cannot'), so the two have no common n-gram of whole words")
        else:
            r["cause"] = (f"spaCy splits words (e.g. 'cannot' -> 'can not', '0km' -> '0 km') in the document and the view "
                          f"alike: datatrove's {n} tokens are {len(doc['words'])} whole words, fewer than {n}")


def compare_common(ours: dict, peer_name: str, peer: dict, cdocs: dict[str, dict], cpaths: dict, cwork: Path,
                   n: int) -> dict:
    """Ours (strict) vs one peer, every side given the same normalised texts: sets, differences, their causes.
    A document under the janitor's 200 characters counts as is (its hits are read from the n-grams it finds,
    not from clean()'s output); for the janitor, how many such documents each set holds is reported."""
    o, p = set(ours["hits"]), set(peer["hits"])
    only_o, only_p = sorted(o - p), sorted(p - o)
    short = {i for i, d in cdocs.items() if len(d["text"]) < JANITOR_SHORT}
    result = {"ours": split_counts(o), "peer": split_counts(p), "both": split_counts(o & p),
              "only_ours": split_counts(set(only_o)), "only_peer": split_counts(set(only_p)),
              "identical": o == p}
    if peer_name == "janitor":
        result.update(identical_without_short=o - short == p - short, short_in_ours=len(o & short),
                      short_in_peer=len(p & short), short_docs=len(short))
    rows = []
    for side_hit, ids in (("hare", only_o), (peer_name, only_p)):
        for doc_id in ids:
            hit = (ours if side_hit == "hare" else peer)["hits"][doc_id]
            row = {"hit_by": side_hit, "id": doc_id, "source": source_of(doc_id), "chars": len(cdocs[doc_id]["text"]),
                   "ngram": hit["ngram"], "task": hit.get("task")}
            if cdocs[doc_id]["source"] == "planted":
                row["planted"] = cdocs[doc_id]["meta"]
            rows.append(row)
    if peer_name == "datatrove" and rows:
        spacy_causes(rows, cdocs, cpaths, cwork, n)
    for row in rows:
        if "cause" not in row:  # the janitor: both split the same texts on whitespace
            row["cause"] = ("unexplained: both read the same whitespace words" +
                            (f" (the document is under {JANITOR_SHORT} characters)" if row["chars"] < JANITOR_SHORT else ""))
    result["causes"] = dict(Counter(r["cause"] for r in rows).most_common())
    result["split_words"] = dict(Counter(f"{w} -> {t}" for r in rows for w, t in r.get("split_words", {}).items()).most_common())
    result["disagreements"] = rows
    return result


def common_pass(sides: list[str], paths: dict, docs: dict[str, dict], exact_hits: dict[str, set], work: Path,
                cpu: int | None, n: int) -> dict:
    """The second comparison: every side run once more (not timed) on the views and documents through
    `common_normalise`; hit sets compared, and each side's set against its own exact-mode set."""
    cwork = work / "common"
    cwork.mkdir(parents=True, exist_ok=True)
    cpaths = {"views": cwork / "benchmark_views.jsonl", "corpus": cwork / "corpus", "index": cwork / "datatrove-index"}
    cdocs, changed = common_inputs(paths, docs, cpaths)
    log(f"same input normalisation: views and {len(cdocs)} documents normalised; still changed by a side's own "
        f"normalisation: {changed}")
    results = {}
    for side in sides:
        results[side] = run_side(side, cpaths, cwork, cpu, n, common_check=side == "datatrove")
        log(f"same input normalisation: {side:9s} {len(results[side]['hits'])} documents with a hit")
    if "datatrove" in results:
        changed["datatrove"] = results["datatrove"]["common_check"]
    hits = {s: set(r["hits"]) for s, r in results.items()}
    return {
        "normalised_texts_changed_by": changed,
        "hits": {s: split_counts(h) for s, h in hits.items()},
        "vs_exact": {s: {"added": split_counts(h - exact_hits[s]), "dropped": split_counts(exact_hits[s] - h),
                         "added_real_ids": sorted(i for i in h - exact_hits[s] if source_of(i) != "planted")}
                     for s, h in hits.items()},
        "comparisons": {p: compare_common(results["hare"], p, results[p], cdocs, cpaths, cwork, n)
                        for p in PEERS if p in results},
    }


def planted_table(results: dict[str, dict], docs: dict[str, dict], n: int) -> dict:
    """Per variant and side: planted documents with a hit (ours also under the coverage rule); `long_enough`:
    the planted item has at least n words (ours), so an exact n-gram match is possible at all."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    coverage = set(results["hare"]["flagged_coverage"]) if "hare" in results else set()
    for doc_id, d in docs.items():
        if d["source"] != "planted":
            continue
        variant = d["meta"]["variant"]
        table[variant]["documents"] += 1
        table[variant]["long_enough"] += d["meta"]["item_words"] >= n
        for side, r in results.items():
            table[variant][side] += doc_id in r["hits"]
        table[variant]["hare_coverage"] += doc_id in coverage
    return {k: dict(v) for k, v in table.items()}


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "exports, index, logs, raw results")
    parser.add_argument("--n", type=int, default=13, help="word n-gram size, every side (default 13)")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {','.join(SIDES)} (hare is required)")
    parser.add_argument("--plant", type=int, default=20, help="benchmark items planted per benchmark, x 3 variants (default 20)")
    parser.add_argument("--seed", type=int, default=20240611, help="planting seed")
    parser.add_argument("--examples", type=int, default=2, help="disagreement examples printed per cause")
    parser.add_argument("--datatrove-index-every-run", action="store_true",
                        help="rebuild datatrove's index in every run (default: build it in the first run, reuse it after)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin each side to one CPU")
    parser.add_argument("--no-common", action="store_true",
                        help="skip the second comparison (every side once more on texts through one shared normalisation)")
    # child mode
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--views", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reuse-index", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--common-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        child_main(args)
        return 0

    sides = [s for s in args.sides.split(",") if s]
    if "hare" not in sides or set(sides) - set(SIDES):
        parser.error(f"--sides must include hare and name only {SIDES}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not (args.data / "corpora").is_dir() or not (args.data / "benchmarks").is_dir():
        raise SystemExit(f"no real corpora/benchmarks under {args.data}; pass --data or set HARE_REAL_DATA")
    data = args.data.resolve()
    os.environ["HARE_REAL_DATA"] = str(data)

    started = time.perf_counter()
    versions = ensure_bench_venv() if "datatrove" in sides else "datatrove not run"
    from importlib.metadata import version

    versions = f"lm_eval=={version('lm_eval')} (janitor); {versions}"
    log(f"peers: {versions}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hare-bench-decontam-"))
    work.mkdir(parents=True, exist_ok=True)
    cpu = pinned_cpu(args.no_pin)
    paths = {"views": work / "benchmark_views.jsonl", "corpus": work / "corpus", "index": work / "datatrove-index"}
    try:
        bench = export_views(data, paths["views"])
        export = export_corpora(paths["corpus"], data)
        docs = export["docs"]
        hosts = [d["text"] for d in docs.values() if len(d["text"].split()) >= 60]
        planted = plant(bench.pop("items"), hosts, args.plant, args.seed)
        docs.update(write_jsonl_docs(paths["corpus"] / "99_planted.jsonl", planted))
        n_docs, n_bytes = len(docs), sum(d["bytes"] for d in docs.values())
        mb = n_bytes / 1e6
        real_bytes = sum(d["bytes"] for d in docs.values() if d["source"] != "planted")
        log(f"benchmarks: {sum(b['items'] for b in bench['per_benchmark'].values())} items, {bench['views']} views "
            f"({bench['view_bytes'] / 1e6:.1f} MB); corpus: {n_docs} documents ({len(planted)} planted), {mb:.2f} MB")

        results: dict[str, list[dict]] = {s: [] for s in sides}
        for rep in range(args.runs):
            order = sides if rep % 2 == 0 else sides[::-1]
            for side in order:
                reuse = side == "datatrove" and bool(results["datatrove"]) and not args.datatrove_index_every_run
                res = run_side(side, paths, work / f"run{rep + 1}", cpu, args.n, reuse)
                results[side].append(res)
                tm = res["timings"]
                log(f"run {rep + 1}/{args.runs} {side:9s} index {tm.get('index_s', float('nan')):7.2f} s, scan {tm['scan_s']:7.2f} s "
                    f"({mb / tm['scan_s']:6.2f} MB/s), {len(res['hits'])} documents with a hit, peak {res['peak_mib']:6.0f} MiB")

        figures_by_side = {s: side_figures(results[s], mb, n_docs) for s in sides}
        first = {s: results[s][0] for s in sides}
        deterministic = {s: all(sorted(r["hits"]) == sorted(results[s][0]["hits"]) for r in results[s]) for s in sides}
        comparisons = {p: compare(first["hare"], p, first[p], docs, paths, work, args.n, args.examples)
                       for p in PEERS if p in sides}
        ours = figures_by_side["hare"]
        ratios = {p: {"scan_mb_s": ratio(ours["scan_mb_s"], figures_by_side[p]["scan_mb_s"]),
                      "read_scan_mb_s": ratio(ours["read_scan_mb_s"], figures_by_side[p]["read_scan_mb_s"]),
                      "index_speedup": ratio(figures_by_side[p]["index_s"], ours["index_s"]),
                      "peak_mib": ratio(ours["peak_mib"], figures_by_side[p]["peak_mib"])} for p in PEERS if p in sides}
        faster = max((p for p in PEERS if p in sides), key=lambda p: figures_by_side[p]["scan_mb_s"], default=None)
        targets = {}
        if faster:
            targets[f"scan_{TARGET_RATIO:g}x_faster_peer_{faster}"] = ratios[faster]["scan_mb_s"] >= TARGET_RATIO
        for p, c in comparisons.items():
            targets[f"identical_hits_{p}"] = c["identical"]
        common = None
        if not args.no_common and len(sides) > 1:
            common = common_pass(sides, paths, docs, {s: set(first[s]["hits"]) for s in sides}, work, cpu, args.n)
            for p, c in common["comparisons"].items():
                targets[f"identical_hits_{COMMON}_{p}"] = c["identical"]
        janitor_extra = {}
        if "janitor" in sides:
            changed = set(first["janitor"]["changed"])
            short = {i for i, d in docs.items() if len(d["text"]) < JANITOR_SHORT}
            janitor_extra = {"changed": split_counts(changed), "short_docs": split_counts(short),
                             "changed_without_hit": split_counts(changed - set(first["janitor"]["hits"])),
                             "changed_without_hit_and_short": len((changed - set(first["janitor"]["hits"])) & short)}
        figures = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "pinned_cpu": cpu, "python": platform.python_version(),
                        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
            "peers": versions, "runs": args.runs, "n": args.n, "sides": sides,
            "benchmarks": bench,
            "input": {"documents": n_docs, "bytes": n_bytes, "mb": mb, "real_bytes": real_bytes,
                      "planted_documents": len(planted), "quarantined_at_ingest": export["quarantined"],
                      "by_source": dict(Counter(d["source"] for d in docs.values()))},
            "sides_figures": figures_by_side, "ratios": ratios, "targets": targets,
            "hits": {s: split_counts(set(first[s]["hits"])) for s in sides},
            "hare_coverage_flagged": split_counts(set(first["hare"]["flagged_coverage"])),
            "janitor_output_changed": janitor_extra,
            "planted_by_variant": planted_table(first, docs, args.n),
            "comparisons": comparisons, "deterministic": deterministic,
            "real_hits": {s: {i: first[s]["hits"][i] for i in first[s]["hits"] if source_of(i) != "planted"} for s in sides},
            COMMON: common,
            "bench_seconds": time.perf_counter() - started,
        }
        write_figures(args.json, figures)
        report(figures)
    finally:
        drop_scratch(work, args.keep, args.workdir is None)
    return 0


def report(f: dict) -> None:
    p = lambda s="": print(s)  # noqa: E731
    inp, b = f["input"], f["benchmarks"]
    p(f"\nBenchmarks: {sum(x['items'] for x in b['per_benchmark'].values())} items, {b['views']} views "
      f"({b['view_bytes'] / 1e6:.1f} MB), every side indexes each view on its own:")
    for name, x in b["per_benchmark"].items():
        missing = f" (not available locally: {', '.join(x['missing_splits'])})" if x["missing_splits"] else ""
        p(f"  {name:15s} {x['items']:6d} items {x['views']:7d} views  splits {', '.join(x['splits'])}{missing}")
    p(f"Corpus: {inp['documents']} documents, {inp['mb']:.2f} MB ({inp['planted_documents']} planted documents; "
      f"real {inp['real_bytes'] / 1e6:.2f} MB), by source {inp['by_source']}")
    p(f"n = {f['n']} on every side; one core each (pinned CPU {f['machine']['pinned_cpu']}); {f['runs']} runs, medians. "
      f"Peers: {f['peers']}")
    p()
    header = (f"{'side':16s} {'index s':>8s} {'load s':>7s} {'read s':>7s} {'scan s':>8s} {'scan MB/s':>10s} "
              f"{'read+scan MB/s':>15s} {'peak MiB':>9s} {'maxRSS MiB':>11s} {'index n-grams':>14s}")
    p(header)
    p("-" * len(header))
    for side, s in f["sides_figures"].items():
        load = f"{s['load_s']:7.2f}" if s["load_s"] == s["load_s"] else f"{'-':>7s}"
        p(f"{side:16s} {s['index_s']:8.2f} {load} {s['read_s']:7.2f} {s['scan_s']:8.3f} {s['scan_mb_s']:10.2f} "
          f"{s['read_scan_mb_s']:15.2f} {s['peak_mib']:9.0f} {s['maxrss_mib']:11.0f} {s['index'].get('ngrams', 0):14,d}")
        if "scan_coverage_s" in s:
            p(f"{'  (coverage rule)':16s} {'':8s} {'':7s} {'':7s} {s['scan_coverage_s']:8.3f} {s['scan_coverage_mb_s']:10.2f}")
    for peer, r in f["ratios"].items():
        p(f"ours / {peer:10s} scan MB/s x{r['scan_mb_s']:.2f}, read+scan x{r['read_scan_mb_s']:.2f}, "
          f"index build {r['index_speedup']:.2f}x faster, peak memory x{r['peak_mib']:.2f}")
    s = f["sides_figures"]
    p(f"(peak = {s['hare']['peak_kind'].upper()} of the side's process tree sampled every 50 ms, median over runs; maxRSS = "
      f"kernel max RSS. scan = documents in memory -> hit decisions; read = parsing the exported JSONL. datatrove: "
      f"index built in {s['datatrove']['index_runs'] if 'datatrove' in s else 0} run(s), load = reading its hash files "
      f"into its dict. Imports excluded: " + ", ".join(f"{k} {v['import_s']:.2f} s" for k, v in s.items()) + ")")
    p()
    p(f"Documents with a hit (exact mode: any {f['n']}-gram)   planted   real   total")
    for side, c in f["hits"].items():
        p(f"  {side:40s} {c['planted']:7d} {c['real']:6d} {c['total']:7d}")
    c = f["hare_coverage_flagged"]
    p(f"  {'hare, default rule (coverage >= 0.5)':40s} {c['planted']:7d} {c['real']:6d} {c['total']:7d}")
    j = f["janitor_output_changed"]
    if j:
        c = j["changed"]
        p(f"  {'janitor: clean() output != [document]':40s} {c['planted']:7d} {c['real']:6d} {c['total']:7d}"
          f"   <- includes {j['changed_without_hit']['total']} documents without any hit, "
          f"{j['changed_without_hit_and_short']} of them under {JANITOR_SHORT} characters "
          f"({j['short_docs']['total']} documents are that short)")
    p()
    p("Planted documents with a hit, by how the item was planted:")
    sides = list(f["hits"])
    p(f"  {'variant':12s} {'docs':>5s} {'>= n words':>10s} " + " ".join(f"{x:>10s}" for x in sides) + f" {'hare cov.':>10s}")
    for variant, row in f["planted_by_variant"].items():
        p(f"  {variant:12s} {row['documents']:5d} {row['long_enough']:10d} " + " ".join(f"{row.get(x, 0):10d}" for x in sides)
          + f" {row['hare_coverage']:10d}")
    p(f"  (>= n words: the planted text has at least n = {f['n']} words, so an exact n-gram hit is possible at all; "
      f"hare cov.: our default coverage >= 0.5 rule, which the item's share of its host document rarely reaches here)")
    for peer, c in f["comparisons"].items():
        p()
        p(f"Ours (strict) vs {peer}: {'IDENTICAL' if c['identical'] else 'different'}; both {c['both']['total']}, "
          f"only ours {c['only_ours']['total']} (planted {c['only_ours']['planted']}, real {c['only_ours']['real']}), "
          f"only {peer} {c['only_peer']['total']} (planted {c['only_peer']['planted']}, real {c['only_peer']['real']})")
        for cause, count in c["causes"].items():
            p(f"  {count:4d} x {cause}")
        for r in c["examples"]:
            what = f"ours: {r['ours_items'][0]}" if r["hit_by"] == "hare" else f"{peer} n-gram: {r['peer_ngram'][:90]!r}"
            planted = f" planted {r['planted']['variant']} {r['planted']['item_id']}" if "planted" in r else ""
            p(f"    hit only by {r['hit_by']}: {r['id'][:60]}{planted}; {what}")
            p(f"      | {r['text'][:160]}")
            if "datatrove_words" in r:
                p(f"      | datatrove words: {r['datatrove_words'][:150]}")
    p()
    p("Real (unplanted) documents with a hit: " + "; ".join(
        f"{side}: " + (", ".join(f"{i.split('@', 1)[1]}" for i in hits) or "none") for side, hits in f["real_hits"].items()))
    p(f"Same hits in every run: {f['deterministic']}")
    if f.get(COMMON):
        report_common(f[COMMON], f["n"])
    p("Targets: " + "; ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in f["targets"].items()))
    p(f"(bench took {f['bench_seconds']:.0f} s)")


def report_common(c: dict, n: int) -> None:
    p = lambda s="": print(s)
    p()
    p("=== Same input normalisation: the matching alone ===")
    p("Every corpus document and benchmark view first goes through one shared normaliser (NFKC, lower-case, combining "
      "marks dropped, every non-letter/digit a space, every digit run '0', whitespace collapsed); every side then runs "
      "unchanged on those texts (once, not timed).")
    ch = c["normalised_texts_changed_by"]
    for kind in ("views", "docs"):
        x = ch[kind]
        dt = ch.get("datatrove", {}).get(kind, {})
        dt_text = (f", datatrove simplify_text {dt.get('simplify_text_changed', 0)}, datatrove spaCy tokens != whitespace "
                   f"words {dt.get('tokens_not_words', 0)}") if "datatrove" in ch else ""
        p(f"  {kind:5s} {x['texts']:7d} normalised texts ({x['empty']} empty); still changed by: the shared normaliser "
          f"{x['common_not_idempotent']}, ours {x['ours_changes']}, janitor {x['janitor_changes']}{dt_text}")
    if "datatrove" in ch and ch["datatrove"]["split_words"]:
        p("  words spaCy splits (distinct, most texts first): " + ", ".join(f"{w} ({k})" for w, k in ch["datatrove"]["split_words"][:20]))
    p(f"Documents with a hit (any {n}-gram)      planted   real   total   vs its exact-mode set: added (real) / dropped")
    for side, h in c["hits"].items():
        v = c["vs_exact"][side]
        p(f"  {side:35s} {h['planted']:7d} {h['real']:6d} {h['total']:7d}   +{v['added']['total']} ({v['added']['real']}) "
          f"/ -{v['dropped']['total']}")
    for peer, x in c["comparisons"].items():
        p(f"Ours (strict) vs {peer}, same input: {'IDENTICAL' if x['identical'] else 'different'}; ours {x['ours']['total']}, "
          f"{peer} {x['peer']['total']}, both {x['both']['total']}, only ours {x['only_ours']['total']} "
          f"(planted {x['only_ours']['planted']}, real {x['only_ours']['real']}), only {peer} {x['only_peer']['total']} "
          f"(planted {x['only_peer']['planted']}, real {x['only_peer']['real']})")
        if "short_docs" in x:
            p(f"  documents under {JANITOR_SHORT} characters, for which clean() returns [] hit or not ({x['short_docs']} in "
              f"the corpus): {x['short_in_ours']} in ours, {x['short_in_peer']} in the janitor's set; counted as they are "
              f"(its hits are the n-grams it finds, not clean()'s output); identical without them: {x['identical_without_short']}")
        for cause, count in x["causes"].items():
            p(f"  {count:4d} x {cause}")
        if x["split_words"]:
            p("       split words in these stretches: " + ", ".join(f"{w} ({k})" for w, k in list(x["split_words"].items())[:12]))
        for r in x["disagreements"][:6]:
            planted = f" planted {r['planted']['variant']} {r['planted']['item_id']}" if "planted" in r else ""
            p(f"    hit only by {r['hit_by']}: {r['id'][:60]}{planted}; n-gram {r['ngram'][:100]!r}")
            if "doc_words" in r:
                p(f"      | document words: {r['doc_words'][:150]}")
                p(f"      | {r['item'][:24]:24s} view words: {r['view_words'][:150]}")


if __name__ == "__main__":
    sys.exit(main())
