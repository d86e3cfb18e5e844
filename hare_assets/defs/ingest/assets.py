"""ingest: the shard manifest (which shards, in which block), then every record of a block's shards as a
document or a quarantined row."""

from functools import partial

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.blocks import MANIFEST, block_jobs, module_fingerprint, run_stage, shard_metadata
from hare_assets.defs.ingest.partitions import BLOCKS
from hare_assets.defs.metadata import count_table, frame_markdown, reason_table
from hare_assets.defs.resources import HareStorage, ShardEngine
from hare_assets.lib import readers
from hare_assets.lib.accounting import Account
from hare_assets.lib.blocks import WORKER_PRELOAD, ingest_part
from hare_assets.lib.profile import Profile
from hare_assets.lib.shards import DELETED, PRESENT, block_source, list_source, update_manifest

RAW = "raw_documents"
QUARANTINE = f"{RAW}__quarantine"


def build_ingest_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    ingest = profile.ingest

    @dg.asset(
        name=MANIFEST,
        group_name="ingest",
        kinds={"parquet", "fsspec"},
        description=(
            "Every shard of every source (path or URL, bytes, modification time or etag, content fingerprint) and the "
            f"block it belongs to. New shards form new blocks of about ingest.block_bytes ({ingest.block_bytes:,} bytes); "
            "existing blocks never change membership; a changed shard is redone in its block, a vanished one is marked "
            "deleted. Registers the `blocks` partitions that the D1 stages run on."
        ),
    )
    def shard_manifest(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        listing = []
        for source in profile.sources:
            try:
                files = list_source(source)
            except FileNotFoundError as exc:
                raise dg.Failure(f"{exc}; check the profile's path") from None
            if not files:
                raise dg.Failure(f"source {source.name!r} has no {source.format} files under {source.path}; check the profile's path")
            listing += files
        previous = tables.read(MANIFEST) if tables.exists(MANIFEST) else None
        update = update_manifest(previous, listing, [s.name for s in profile.sources], ingest.block_bytes)
        tables.write(MANIFEST, update.manifest)
        blocks = update.manifest["block"].unique().sort().to_list()
        known = set(context.instance.get_dynamic_partitions(BLOCKS.name))
        context.instance.add_dynamic_partitions(BLOCKS.name, [b for b in blocks if b not in known])
        present = update.manifest.filter(pl.col("status") == PRESENT)
        per_source = present.group_by("source").agg(
            pl.len().alias("shards"), pl.col("bytes").sum().alias("bytes"), pl.col("block").n_unique().alias("blocks")).sort("source")
        for label, items in (("new", update.new_shards), ("changed", update.changed_shards), ("deleted", update.deleted_shards)):
            if items:
                context.log.info(f"{len(items)} {label} shard(s): {', '.join(items[:10])}{' …' if len(items) > 10 else ''}")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(present.height),
            "blocks": dg.MetadataValue.int(len(blocks)),
            "bytes": dg.MetadataValue.int(int(present["bytes"].sum() or 0)),
            "per_source": frame_markdown(per_source),
            "new_blocks": dg.MetadataValue.text(", ".join(update.new_blocks) or "none"),
            "blocks_to_redo": dg.MetadataValue.text(", ".join(update.changed_blocks) or "none"),
            "new_shards": dg.MetadataValue.int(len(update.new_shards)),
            "changed_shards": dg.MetadataValue.text(", ".join(update.changed_shards) or "none"),
            "deleted_shards": dg.MetadataValue.text(", ".join(update.deleted_shards) or "none"),
            "deleted_total": dg.MetadataValue.int(update.manifest.filter(pl.col("status") == DELETED).height),
        })

    read_code = module_fingerprint(readers)

    @dg.asset(
        name=RAW,
        partitions_def=BLOCKS,
        deps=[MANIFEST],
        group_name="ingest",
        kinds={"parquet", "polars"},
        check_specs=[accounting_spec(RAW)],
        description=(
            "Every record of one block's shards as a document (doc_id, source, shard, row, text, meta), one part file per "
            f"shard, streamed in batches of ingest.batch_records. Malformed records go to `{QUARANTINE}` with a reason; an "
            "unreadable shard is retried, then quarantined; byte-order marks and CRLF are normalised. A rerun skips the "
            "shards it finished before."
        ),
    )
    def raw_documents(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables, block = storage.tables, context.partition_key
        source = profile.source(block_source(block))
        settings = (read_code, ingest.max_doc_bytes, source.model_dump(mode="json", exclude={"path", "weight", "quality"}))
        jobs = block_jobs(tables, block, None, settings)
        work = partial(ingest_part, tables, RAW, block, source, ingest.max_doc_bytes, ingest.batch_records)
        run = run_stage(context, tables, RAW, [QUARANTINE], jobs, work, engine.pool(ingest.processes, WORKER_PRELOAD))
        quarantine = tables.read(QUARANTINE, block, columns=["source", "shard", "row", "reason", "detail"])
        account = Account(rows_in=run.total("rows_in"), rows_out=tables.num_rows(RAW, block), quarantined=quarantine.height)
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                **shard_metadata(run),
                "source": dg.MetadataValue.text(source.name),
                "bytes": dg.MetadataValue.int(run.total("bytes")),
                "quarantine": reason_table(quarantine),
                "normalised": count_table(run.counts("normalised"), "fix"),
                "path": dg.MetadataValue.path(tables.url(RAW, block)),
            },
            check_results=[accounting_result(RAW, account)],
        )

    return [shard_manifest, raw_documents]
