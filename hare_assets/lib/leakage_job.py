"""Subprocess entry point for the leakage check: `python -m hare_assets.lib.leakage_job --config-json '{...}'`.

Config: `checkpoint` (HF directory), `items` (Parquet with benchmark, split, item_id, text,
paraphrase), `out_dir`, and optionally `n`, `starts`, `batch_size`, `device`. Writes
`items.parquet` (per item D, D′, Δ, perplexities) and `table.parquet` (HARE Table 6 shape) under
`out_dir`, which the asset reads; progress goes to Dagster as Pipes logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from hare_assets.lib.job_runtime import exit_now, job_logger, pipes_session, read_config
from hare_assets.lib.leakage import LeakageItem, leakage_items, leakage_summary, load_model


def run(config: dict[str, Any]) -> pl.DataFrame:
    out = Path(config["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    with pipes_session() as pipes:
        log = job_logger(pipes)

        rows = pl.read_parquet(config["items"])
        items = [LeakageItem(r["benchmark"], r["split"], r["item_id"], r["text"], r["paraphrase"]) for r in rows.iter_rows(named=True)]
        log(f"scoring {len(items)} items and their paraphrases with {config['checkpoint']}")
        model, tokenizer = load_model(config["checkpoint"], device=config.get("device"))
        per_item = leakage_items(items, model, tokenizer, n=config.get("n", 5), starts=config.get("starts", 5),
                                 batch_size=config.get("batch_size", 8))
        table = leakage_summary(per_item)
        per_item.write_parquet(out / "items.parquet")
        table.write_parquet(out / "table.parquet")
        log("\n" + str(table))
        return table


def main(argv: list[str] | None = None) -> int:
    run(read_config(argv, __doc__.splitlines()[0], "checkpoint, items, out_dir[, n, starts, batch_size, device]"))
    return 0


if __name__ == "__main__":
    exit_now(main())
