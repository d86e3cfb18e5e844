"""mixture + model: the training mixture per stage, packed token blocks, and checkpoints trained
through the job launcher (Dagster Pipes), each checkpoint recorded with the data behind it."""

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.blocks import block_jobs, run_stage, shard_metadata
from hare_assets.defs.curate.topics import ASSIGNMENTS, CLUSTERS
from hare_assets.defs.ingest.partitions import BLOCKS
from hare_assets.defs.integrity.assets import DECONTAMINATED, load_index
from hare_assets.defs.metadata import frame_markdown, png_markdown
from hare_assets.defs.model.partitions import STAGES
from hare_assets.defs.resources import HareStorage, JobLauncher, ShardEngine
from hare_assets.lib.accounting import Account
from hare_assets.lib.blocks import WORKER_PRELOAD, tokenize_part
from hare_assets.lib.contamination import rule_for
from hare_assets.lib.decontam import scan_batch
from hare_assets.lib.diskspace import space_guard
from hare_assets.lib.lineage import (
    CHECKPOINT_ACCOUNTING,
    CHECKPOINT_MANIFESTS,
    CHECKPOINT_SCHEMA,
    CHECKPOINTS,
    accounting_snapshot,
    checkpoint_id,
    checkpoint_record,
    latest_checkpoint,
    settings_snapshot,
)
from hare_assets.lib.mixture import build_mixture
from hare_assets.lib.packing import PackedDataset, pack_token_ids
from hare_assets.lib.presets import get_preset
from hare_assets.lib.profile import IntegrityConfig, Profile
from hare_assets.lib.storage import TableStore
from hare_assets.lib.tokenizer import encoder

if TYPE_CHECKING:
    from hare_assets.lib.training import TrainConfig

TOKENS = "document_tokens"
MIXTURE = "training_mixture"
PACKED = "packed_sequences"
CHECKPOINT = "checkpoint"
CLEAN_INPUTS_CHECK = "only_decontaminated_samples"
BUDGET_CHECK = "token_budget_met"


def d1_pool(tables: TableStore) -> pl.DataFrame:
    """D1's decontaminated rows without their text, with each document's token count from `document_tokens`."""
    blocks = tables.partitions(DECONTAMINATED["d1"])
    missing = [b for b in blocks if tables.committed(TOKENS, b) is None]
    if missing:
        raise dg.Failure(f"{TOKENS} is not materialized for blocks {missing[:5]}{' …' if len(missing) > 5 else ''}; "
                         "materialize those partitions first")
    rows = tables.read(DECONTAMINATED["d1"], columns=["doc_id", "source", "shard", "row"])
    d1 = rows.join(tables.read(TOKENS, columns=["doc_id", "tokens"]), on="doc_id", how="left")
    stale = d1.filter(pl.col("tokens").is_null())
    if stale.height:
        raise dg.Failure(f"{stale.height} D1 documents have no tokens (e.g. {stale['doc_id'][0]}, shard {stale['shard'][0]}); "
                         f"rematerialize {TOKENS} for their blocks")
    return d1


def pools(tables: TableStore, datasets: list[str], topics: list[str], tasks: list[str]) -> dict[str, pl.DataFrame]:
    """The decontaminated rows of each dataset: D1 whole (token counts, no text), D2 over the current topics,
    D3 over the profile's tasks (with text)."""
    out = {}
    if "d1" in datasets and tables.exists(DECONTAMINATED["d1"]):
        d1 = d1_pool(tables)
        if tables.exists(ASSIGNMENTS):  # D1 documents carry their topic cluster into the manifest
            d1 = d1.join(tables.read(ASSIGNMENTS, columns=["doc_id", "topic"]), on="doc_id", how="left")
        out["d1"] = d1
    for dataset, keys in (("d2", topics), ("d3", tasks)):
        if dataset in datasets:
            parts = [tables.read(DECONTAMINATED[dataset], k) for k in keys if tables.exists(DECONTAMINATED[dataset], k)]
            if parts:
                out[dataset] = pl.concat(parts, how="diagonal_relaxed")
    return out


def d1_texts(tables: TableStore, doc_ids: list[str]) -> pl.DataFrame:
    """The text of these D1 documents only (a filtered read: the rest of D1 stays on disk)."""
    return tables.read(DECONTAMINATED["d1"], columns=["doc_id", "text"], filters=[("doc_id", "in", doc_ids)])


def token_stream(tables: TableStore, samples: pl.DataFrame, pool: dict[str, pl.DataFrame],
                 tokenizer: str | None) -> Iterator[tuple[str, list[int]]]:
    """The mixture's samples as (doc_id, token ids) in stream order: D1's ids from its token cache, D2 and D3
    (small) tokenized here."""
    wanted = samples.select("dataset", "doc_id").unique()
    d1 = wanted.filter(pl.col("dataset") == "d1")["doc_id"].to_list()
    parts = [tables.read(TOKENS, columns=["doc_id", "ids"], filters=[("doc_id", "in", d1)]).select(
        pl.lit("d1").alias("dataset"), "doc_id", "ids")] if d1 else []
    for dataset, rows in pool.items():
        if dataset != "d1":
            mine = rows.join(wanted.filter(pl.col("dataset") == dataset), on="doc_id", how="semi").unique("doc_id")
            parts.append(pl.DataFrame({"dataset": dataset, "doc_id": mine["doc_id"], "ids": pl.Series(
                encoder(tokenizer).encode(mine["text"].to_list()), dtype=pl.List(pl.UInt32))}))
    joined = samples.select("position", "dataset", "doc_id").join(pl.concat(parts), on=["dataset", "doc_id"], how="left").sort("position")
    missing = joined.filter(pl.col("ids").is_null())
    if missing.height:
        raise dg.Failure(f"{missing.height} mixture samples no longer exist in the decontaminated tables "
                         f"(e.g. {missing.row(0, named=True)['doc_id']}); rematerialize {MIXTURE}")
    for chunk in joined.iter_slices(4096):
        yield from zip(chunk["doc_id"].to_list(), chunk["ids"].to_list())


def build_model_assets(profile: Profile, tasks: dg.PartitionsDefinition, topics: dg.PartitionsDefinition,
                       gpu_pool: str = "gpu") -> list[dg.AssetsDefinition]:
    mix, model = profile.mixture, profile.model
    seq_len = model.seq_len or get_preset(model.preset).seq_len
    source_weights = {s.name: s.weight for s in profile.sources}

    @dg.asset(
        name=TOKENS,
        partitions_def=BLOCKS,
        deps=[DECONTAMINATED["d1"]],
        group_name="mixture",
        kinds={"parquet"},
        code_version=model.tokenizer or "mistral",
        check_specs=[accounting_spec(TOKENS)],
        description=(
            "One block of D1 tokenized once (the model's tokenizer): each document's token ids and its count with <s> "
            "and </s>. Mixtures budget from the counts and packing gathers the ids, so neither tokenizes D1 again; a new "
            "block tokenizes only itself."
        ),
    )
    def document_tokens(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables, block, source = storage.tables, context.partition_key, DECONTAMINATED["d1"]
        fingerprint = encoder(model.tokenizer).fingerprint
        jobs = block_jobs(tables, block, source, fingerprint)
        work = partial(tokenize_part, tables, source, TOKENS, block, model.tokenizer, profile.ingest.batch_records)
        run = run_stage(context, tables, TOKENS, [], jobs, work, engine.pool(profile.ingest.processes, WORKER_PRELOAD))
        account = Account(rows_in=tables.num_rows(source, block), rows_out=tables.num_rows(TOKENS, block))
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                **shard_metadata(run),
                "tokens": dg.MetadataValue.int(run.total("tokens")),
                "tokenizer": dg.MetadataValue.text(fingerprint),
                "path": dg.MetadataValue.path(tables.url(TOKENS, block)),
            },
            check_results=[accounting_result(TOKENS, account)],
        )

    @dg.asset(
        name=MIXTURE,
        partitions_def=STAGES,
        deps=[
            dg.AssetDep(DECONTAMINATED["d1"], partition_mapping=dg.AllPartitionMapping()),
            dg.AssetDep(TOKENS, partition_mapping=dg.AllPartitionMapping()),
            CLUSTERS,
            dg.AssetDep(DECONTAMINATED["d2"], partition_mapping=dg.AllPartitionMapping()),
            dg.AssetDep(DECONTAMINATED["d3"], partition_mapping=dg.AllPartitionMapping()),
        ],
        group_name="mixture",
        kinds={"parquet", "polars"},
        check_specs=[
            dg.AssetCheckSpec(CLEAN_INPUTS_CHECK, asset=MIXTURE, blocking=True,
                              description="Every selected sample re-scanned against the benchmark index under its dataset's rule: "
                                          "no sample may reach it (a mixture cannot be built from contaminated data)."),
            dg.AssetCheckSpec(BUDGET_CHECK, asset=MIXTURE,
                              description="Each dataset reached its share of the token budget (warns on a shortfall after max_repeats passes)."),
        ],
        code_version=hashlib.sha256(json.dumps([mix.model_dump(mode="json"), model.tokenizer, source_weights],
                                               sort_keys=True).encode()).hexdigest()[:12],
        description=(
            "One stage's training samples: stage1 = D1 only; stage2 = D1 + D2 + D3 by the weights in the profile "
            "(HARE: 46.5 / 13.63 / 39.87), within D1 by source weight, under a token budget; small datasets are "
            "repeated. Only decontaminated rows enter. Rows: dataset, doc_id, provenance, tokens, epoch, position; "
            f"`{MIXTURE}__manifest` has tokens and documents per dataset, source, shard and topic."
        ),
    )
    def training_mixture(context: dg.AssetExecutionContext, storage: HareStorage):
        stage = context.partition_key
        cfg = mix.stage(stage)
        tables = storage.tables
        datasets = [d for d, w in cfg.datasets.items() if w > 0]
        pool = pools(tables, datasets, context.instance.get_dynamic_partitions(topics.name), tasks.get_partition_keys())
        try:
            mixture = build_mixture(pool, cfg.tokens, cfg.datasets, source_weights, seed=mix.seed, max_repeats=mix.max_repeats,
                                    tokenizer=model.tokenizer)
        except ValueError as exc:
            raise dg.Failure(f"{stage}: {exc}") from exc
        for warning in mixture.warnings:
            context.log.warning(warning)
        samples = mixture.samples.drop("text")
        tables.write(f"{MIXTURE}__manifest", mixture.manifest(), stage)
        tables.write(f"{MIXTURE}__plan", mixture.plan_frame(), stage)
        tables.write(MIXTURE, samples, stage)
        selected = mixture.samples
        if "d1" in pool:  # D1 came without text; the re-scan reads the selected documents' text only
            texts = d1_texts(tables, selected.filter(pl.col("dataset") == "d1")["doc_id"].unique().to_list())
            selected = selected.join(texts.select(pl.lit("d1").alias("dataset"), "doc_id", pl.col("text").alias("_d1")),
                                     on=["dataset", "doc_id"], how="left").with_columns(
                pl.coalesce("text", "_d1").alias("text")).drop("_d1")
        over = _rescan(tables, selected, profile.integrity)
        per_dataset = (samples.group_by("dataset").agg(pl.col("tokens").sum(), pl.len().alias("samples"),
                                                       pl.col("doc_id").n_unique().alias("documents"))
                       .with_columns((pl.col("tokens") / pl.col("tokens").sum() * 100).round(2).alias("share_%")).sort("dataset"))
        fingerprint = hashlib.sha256(samples.select("dataset", "doc_id", "epoch").write_csv().encode()).hexdigest()[:16]
        short = [g for g in mixture.plan if g.shortfall]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(samples.height),
                "tokens": dg.MetadataValue.int(int(samples["tokens"].sum())),
                "budget": dg.MetadataValue.int(cfg.tokens),
                "per_dataset": frame_markdown(per_dataset),
                "plan": frame_markdown(mixture.plan_frame()),
                "fingerprint": dg.MetadataValue.text(fingerprint),
                "warnings": dg.MetadataValue.text("\n".join(mixture.warnings) or "none"),
            },
            check_results=[
                dg.AssetCheckResult(check_name=CLEAN_INPUTS_CHECK, passed=not over, severity=dg.AssetCheckSeverity.ERROR,
                                    description=f"{len(over)} samples reach a decontamination rule" if over else "no sample reaches a rule",
                                    metadata={"examples": dg.MetadataValue.json(over[:5])}),
                dg.AssetCheckResult(check_name=BUDGET_CHECK, passed=not short, severity=dg.AssetCheckSeverity.WARN,
                                    description="; ".join(mixture.warnings) or "every dataset reached its share"),
            ],
        )

    @dg.asset(
        name=PACKED,
        partitions_def=STAGES,
        deps=[MIXTURE, dg.AssetDep(TOKENS, partition_mapping=dg.AllPartitionMapping())],
        group_name="mixture",
        kinds={"numpy", "parquet"},
        code_version=f"seq_len={seq_len};tokenizer={model.tokenizer or 'mistral'}",
        description=(
            "The stage's samples as token ids (D1's from `document_tokens`; D2 and D3 tokenized here; Mistral SentencePiece "
            "by default; `<s>` … `</s>` around each) packed into seq_len blocks with no padding, as memory-mapped uint16 token shards, with a block → (doc_id, token span) "
            "provenance index beside them."
        ),
    )
    def packed_sequences(context: dg.AssetExecutionContext, storage: HareStorage):
        stage = context.partition_key
        tables = storage.tables
        samples = tables.read(MIXTURE, stage)
        pool = pools(tables, [d for d in samples["dataset"].unique().to_list() if d != "d1"],
                     context.instance.get_dynamic_partitions(topics.name), tasks.get_partition_keys())
        out = storage.artifacts_dir / PACKED / stage
        with space_guard(out, needed=int(samples["tokens"].sum() + 2 * samples.height) * 2):  # uint16 ids, <s> and </s>
            stats = pack_token_ids(token_stream(tables, samples, pool, model.tokenizer), out, seq_len, tokenizer=model.tokenizer,
                                   metadata={"stage": stage, "samples": samples.height})
        data = PackedDataset(out)
        if len(data) == 0:
            raise dg.Failure(f"{stage}: {stats.tokens + stats.dropped_tokens} tokens make no {seq_len}-token block; raise mixture.{stage}.tokens")
        context.log.info(f"{stage}: {stats.blocks} blocks of {seq_len} tokens, {stats.tokens_per_s:,.0f} tokens/s")
        return dg.MaterializeResult(metadata={
            "blocks": dg.MetadataValue.int(stats.blocks),
            "seq_len": dg.MetadataValue.int(seq_len),
            "tokens": dg.MetadataValue.int(stats.tokens),
            "dropped_tokens": dg.MetadataValue.int(stats.dropped_tokens),
            "documents": dg.MetadataValue.int(stats.documents),
            "empty_documents": dg.MetadataValue.int(stats.empty_documents),
            "tokens_per_s": dg.MetadataValue.float(round(stats.tokens_per_s, 1)),
            "tokenizer": dg.MetadataValue.text(encoder(model.tokenizer).fingerprint),
            "fingerprint": dg.MetadataValue.text(data.fingerprint()),
            "path": dg.MetadataValue.path(str(out)),
        })

    @dg.asset(
        name=CHECKPOINT,
        partitions_def=STAGES,
        deps=[PACKED],
        group_name="model",
        kinds={"pytorch", "huggingface"},
        pool=gpu_pool,
        description=(
            f"A Mistral-architecture causal LM (preset {model.preset!r}) trained on the stage's packed blocks through the "
            "job launcher (Dagster Pipes; `accelerate launch` with several GPUs, a pod with launcher k8s). stage2 starts "
            "from stage1's weights. HF format (safetensors + config + tokenizer) that AutoModelForCausalLM and vLLM load. "
            "A killed run resumes from its last state with the same data order."
        ),
    )
    def checkpoint(context: dg.AssetExecutionContext, storage: HareStorage, launcher: JobLauncher):
        stage = context.partition_key
        tables = storage.tables
        root = storage.artifacts_dir
        init_from, parent_id = None, None
        previous = latest_checkpoint(tables, stage)
        pack_fingerprint = PackedDataset(root / PACKED / stage).fingerprint()
        if (profile.training.on_new_data == "continue" and previous is not None
                and previous["data_fingerprint"] != pack_fingerprint):
            if Path(previous["path"]).is_dir():  # its weights, on the new pack
                init_from, parent_id = previous["path"], previous["checkpoint_id"]
                context.log.info(f"{stage}: new data; continuing {previous['checkpoint_id']} (training.on_new_data: continue)")
            else:
                context.log.warning(f"{stage}: {previous['checkpoint_id']}'s weights were pruned (training.keep_checkpoints); "
                                    "training the stage anew")
        if init_from is None and stage == "stage2":
            parent = latest_checkpoint(tables, "stage1")
            if parent is None:
                raise dg.Failure("stage2 continues stage1: materialize checkpoint[stage1] first")
            init_from, parent_id = parent["path"], parent["checkpoint_id"]
        config = train_config(profile, stage, root, init_from)
        ckpt_id = checkpoint_id(stage, config, pack_fingerprint, parent_id)
        config.run_id = ckpt_id
        # the id covers config, data and parent: the same id resumes its own state, another id starts its own folder
        run_dir = root / CHECKPOINT / stage / ckpt_id
        config.out_dir = str(run_dir)
        started = time.perf_counter()
        invocation = launcher.run(context, "hare_assets.lib.train_job", config.to_dict(), distributed=True)
        reported = invocation.get_materialize_result()
        info = json.loads((run_dir / "result.json").read_text())
        record = checkpoint_record(ckpt_id, stage, config, info, parent_id, settings_snapshot(profile))
        tables.write(CHECKPOINTS, pl.DataFrame([record], schema=CHECKPOINT_SCHEMA), ckpt_id)
        tables.write(CHECKPOINT_MANIFESTS, tables.read(f"{MIXTURE}__manifest", stage), ckpt_id)
        tables.write(CHECKPOINT_ACCOUNTING, accounting_snapshot(tables), ckpt_id)
        context.log.info(f"{stage}: checkpoint {ckpt_id} in {time.perf_counter() - started:.0f}s -> {record['path']}")
        for old in prune_runs(root / CHECKPOINT / stage, stage, keep=profile.training.keep_checkpoints):
            context.log.info(f"{stage}: removed the weights of {old.name} (keep_checkpoints: {profile.training.keep_checkpoints})")
        plot = run_dir / "loss_curve.png"
        return dg.MaterializeResult(
            metadata={
                **(reported.metadata or {}),
                "checkpoint_id": dg.MetadataValue.text(ckpt_id),
                "checkpoint": dg.MetadataValue.path(record["path"]),
                "init_from": dg.MetadataValue.text(parent_id or "fresh weights"),
                "loss_curve_plot": png_markdown(plot.read_bytes(), "training loss"),
                "settings": dg.MetadataValue.json(json.loads(record["settings"])),
            },
            data_version=dg.DataVersion(ckpt_id),
        )

    return [document_tokens, training_mixture, packed_sequences, checkpoint]


def prune_runs(stage_dir: Path, stage: str, keep: int) -> list[Path]:
    """Delete all but the `keep` newest run directories (`<stage>-<id>`) of a stage; returns those deleted.

    A checkpoint's record, manifest, accounting and scores live in tables and stay; its
    weights and resumable state are what take the disk (about 4x the weights with AdamW).
    """
    runs = sorted((d for d in stage_dir.glob(f"{stage}-*") if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old)
    return runs[keep:]


def train_config(profile: Profile, stage: str, root, init_from: str | None) -> "TrainConfig":
    """The TrainConfig of one stage from the profile (model, training.stageN, device and precision);
    `out_dir` is the stage's folder, where the asset gives each checkpoint id its own run folder."""
    from hare_assets.lib.training import TrainConfig  # torch loads here, not with the definitions

    model, training = profile.model, profile.training
    st = training.stage(stage)
    overrides = dict(model.overrides)
    if model.seq_len:
        overrides["seq_len"] = model.seq_len
    enc = encoder(model.tokenizer)
    if not enc.sentencepiece:  # the embedding and special ids follow the tokenizer
        overrides.update(vocab_size=enc.vocab_size, bos_token_id=enc.bos_id, eos_token_id=enc.eos_id)
    return TrainConfig(
        data=str(root / PACKED / stage), out_dir=str(root / CHECKPOINT / stage), preset=model.preset, model=overrides,
        init_from=init_from, tokenizer=model.tokenizer, seed=st.seed, max_steps=st.max_steps,
        micro_batch_size=st.micro_batch_size, grad_accum=st.grad_accum, lr=st.lr, min_lr_ratio=st.min_lr_ratio,
        warmup_steps=st.warmup_steps, weight_decay=st.weight_decay, grad_clip=st.grad_clip, log_every=st.log_every,
        save_every=st.save_every, device=training.device, precision=training.precision, compile=training.compile,
        num_threads=training.num_threads,
    )


def _rescan(tables: TableStore, samples: pl.DataFrame, integrity: IntegrityConfig) -> list[dict]:
    """Samples (with text) that reach their dataset's decontamination rule."""
    bad, indexes = [], {}  # one load per n: D1 and D2 share theirs
    unique = samples.unique(["dataset", "doc_id"])
    for dataset in sorted(unique["dataset"].unique().to_list()):
        rows = unique.filter(pl.col("dataset") == dataset)
        rule = rule_for(integrity, dataset)
        if rule.n not in indexes:
            indexes[rule.n] = load_index(tables, rule.n)
        flagged = scan_batch(rows["text"].to_list(), indexes[rule.n], rule).contaminated
        bad += rows.filter(pl.Series(flagged)).select("dataset", "doc_id", "source", "shard", "row").to_dicts()
    return bad
