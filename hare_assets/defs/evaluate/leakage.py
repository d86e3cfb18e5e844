"""evaluate (leakage): benchmark items paraphrased by the one generator, and the BenBench-style check of
a checkpoint on originals vs paraphrases (HARE App. B, Table 6)."""

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.integrity.assets import BENCHMARK_SETS
from hare_assets.defs.metadata import frame_markdown, reason_table
from hare_assets.defs.model.assets import CHECKPOINT
from hare_assets.defs.resources import GeneratorResource, HareStorage, JobLauncher
from hare_assets.lib.accounting import Account
from hare_assets.lib.benchmarks import gold_text, items_from_frame
from hare_assets.lib.generation import GenerationRequest
from hare_assets.lib.lineage import latest_checkpoint
from hare_assets.lib.profile import Profile
from hare_assets.lib.prompts import load_template
from hare_assets.lib.synthesis import stable_sample

PARAPHRASES = "benchmark_paraphrases"
LEAKAGE = "leakage_report"
UNCHANGED = "unchanged_paraphrase"


def build_leakage_assets(profile: Profile, benchmarks: dg.StaticPartitionsDefinition, gpu: bool) -> list[dg.AssetsDefinition]:
    cfg = profile.integrity.leakage
    sampling = profile.generator.sampling

    @dg.asset(
        name=PARAPHRASES,
        partitions_def=benchmarks,
        deps=[BENCHMARK_SETS],
        group_name="evaluate",
        kinds={"parquet", "llm"},
        pool="gpu" if gpu else None,
        check_specs=[accounting_spec(PARAPHRASES)],
        description=(
            "Up to integrity.leakage.items_per_benchmark items of one benchmark, each as one text with its answer and "
            "a paraphrase from the generator resource (resources/prompts/leakage), cached like all generation. "
            "Failed generations are quarantined; paraphrases identical to the original are removed."
        ),
    )
    def benchmark_paraphrases(context: dg.AssetExecutionContext, storage: HareStorage, generator: GeneratorResource):
        benchmark = context.partition_key
        tables = storage.tables
        frame = tables.read(BENCHMARK_SETS, benchmark).with_columns(pl.concat_str("split", pl.lit("/"), "item_id").alias("doc_id"))
        picked = stable_sample(frame, cfg.items_per_benchmark, f"leakage:{benchmark}").drop("doc_id")
        items = items_from_frame(picked)
        template = load_template("leakage", "paraphrase", cfg.prompt_version)
        texts = [gold_text(it) for it in items]
        requests = [GenerationRequest(prompt=template.render(seed=t), system=template.system,
                                      **sampling.request_fields(cfg.max_tokens), task="paraphrase", seed_text=t) for t in texts]
        gen = generator.generator(context.log.info)
        results = gen.generate(requests)
        kept, removed, quarantine = [], [], []
        for it, text, res in zip(items, texts, results):
            row = {"benchmark": it.benchmark, "split": it.split, "item_id": it.item_id, "text": text,
                   "paraphrase": (res.text or "").strip(), "generator": gen.backend.model, "prompt_version": template.id}
            where = {"source": benchmark, "shard": it.split, "row": len(kept) + len(removed) + len(quarantine)}
            if not res.ok:
                quarantine.append({**where, "reason": "generation_failed", "detail": res.error or "", "raw": text[:500]})
            elif " ".join(row["paraphrase"].split()) == " ".join(text.split()):
                removed.append({**row, **where, "reason": UNCHANGED, "detail": "the generator returned the original"})
            else:
                kept.append(row)
        schema = {"benchmark": pl.String, "split": pl.String, "item_id": pl.String, "text": pl.String, "paraphrase": pl.String,
                  "generator": pl.String, "prompt_version": pl.String}
        removed_schema = {**schema, "source": pl.String, "shard": pl.String, "row": pl.Int64, "reason": pl.String, "detail": pl.String}
        quarantine_schema = {"source": pl.String, "shard": pl.String, "row": pl.Int64, "reason": pl.String, "detail": pl.String, "raw": pl.String}
        removed_frame = pl.DataFrame(removed, schema=removed_schema)
        quarantine_frame = pl.DataFrame(quarantine, schema=quarantine_schema)
        tables.write(f"{PARAPHRASES}__quarantine", quarantine_frame, benchmark)
        tables.write(f"{PARAPHRASES}__removed", removed_frame, benchmark)
        tables.write(PARAPHRASES, pl.DataFrame(kept, schema=schema), benchmark)
        account = Account(rows_in=len(items), rows_out=tables.num_rows(PARAPHRASES, benchmark),
                          removed=Account.count([r["reason"] for r in removed]), quarantined=len(quarantine))
        example = kept[0] if kept else None
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "generator": dg.MetadataValue.text(f"{gen.backend.kind}:{gen.backend.model}"),
                "generation": dg.MetadataValue.json(gen.stats.as_dict()),
                "removed": reason_table(removed_frame),
                "example": dg.MetadataValue.md(f"**original** {example['text']}\n\n**paraphrase** {example['paraphrase']}" if example else "(none)"),
            },
            check_results=[accounting_result(PARAPHRASES, account)],
        )

    @dg.asset(
        name=LEAKAGE,
        partitions_def=benchmarks,
        deps=[PARAPHRASES, dg.AssetDep(CHECKPOINT, partition_mapping=dg.StaticPartitionMapping({cfg.stage: benchmarks.get_partition_keys()}))],
        group_name="evaluate",
        kinds={"pytorch", "parquet"},
        pool="gpu",
        description=(
            f"BenBench-style leakage check of checkpoint[{cfg.stage}] on one benchmark: {cfg.n}-gram accuracy at {cfg.starts} "
            "starting points on the original items (D) and their paraphrases (D′), Δ = D − D′ per split, and the perplexity "
            "of both — HARE's Table 6. A large positive Δ points at memorised benchmark text."
        ),
    )
    def leakage_report(context: dg.AssetExecutionContext, storage: HareStorage, launcher: JobLauncher):
        benchmark = context.partition_key
        tables = storage.tables
        ckpt = latest_checkpoint(tables, cfg.stage)
        if ckpt is None:
            raise dg.Failure(f"no checkpoint[{cfg.stage}] yet: materialize it first")
        out = storage.artifacts_dir / LEAKAGE / benchmark
        out.mkdir(parents=True, exist_ok=True)
        items = out / "input.parquet"
        tables.read(PARAPHRASES, benchmark).write_parquet(items)
        config = {"checkpoint": ckpt["path"], "items": str(items), "out_dir": str(out), "n": cfg.n, "starts": cfg.starts,
                  "batch_size": cfg.batch_size, "device": None if profile.evaluation.device == "auto" else profile.evaluation.device}
        launcher.run(context, "hare_assets.lib.leakage_job", config)
        per_item, table = pl.read_parquet(out / "items.parquet"), pl.read_parquet(out / "table.parquet")
        tables.write(f"{LEAKAGE}__items", per_item.with_columns(pl.lit(ckpt["checkpoint_id"]).alias("checkpoint_id")), benchmark)
        tables.write(LEAKAGE, table.with_columns(pl.lit(ckpt["checkpoint_id"]).alias("checkpoint_id")), benchmark)
        return dg.MaterializeResult(metadata={
            "checkpoint_id": dg.MetadataValue.text(ckpt["checkpoint_id"]),
            "table_6": frame_markdown(table.with_columns(pl.col("D", "D_prime", "delta").round(2),
                                                         pl.col("ppl_original", "ppl_paraphrase").round(1))),
            **{f"delta_{r['split']}": dg.MetadataValue.float(float(r["delta"])) for r in table.iter_rows(named=True)
               if r["delta"] is not None},
        })

    return [benchmark_paraphrases, leakage_report]
