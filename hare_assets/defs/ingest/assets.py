"""ingest: every record of a source's shards becomes a document or a quarantined row."""

import dagster as dg

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.metadata import count_table, reason_table
from hare_assets.defs.resources import HareStorage
from hare_assets.lib import schemas
from hare_assets.lib.accounting import Account
from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.profile import Profile
from hare_assets.lib.readers import list_shards, read_shard

RAW = "raw_documents"
QUARANTINE = f"{RAW}__quarantine"


def build_ingest_assets(profile: Profile, partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=RAW,
        partitions_def=partitions,
        group_name="ingest",
        kinds={"parquet", "polars"},
        check_specs=[accounting_spec(RAW)],
        description=(
            "Every record of one source's shards as a document (doc_id, source, shard, row, text, meta). "
            f"Malformed records go to `{QUARANTINE}` with a reason; byte-order marks and CRLF are normalised."
        ),
    )
    def raw_documents(context: dg.AssetExecutionContext, storage: HareStorage):
        source = profile.source(context.partition_key)
        shards = list_shards(source)
        if not shards:
            raise dg.Failure(f"source {source.name!r} has no {source.format} files under {source.path}; check the profile's path")
        docs: list[dict] = []
        quarantine: list[dict] = []
        normalised: dict[str, int] = {}
        records = 0
        for i, shard in enumerate(shards, 1):
            result = read_shard(source, shard, profile.ingest.max_doc_bytes)
            docs.extend(result.docs)
            quarantine.extend(result.quarantine)
            records += result.records
            for fix, n in result.normalised.items():
                normalised[fix] = normalised.get(fix, 0) + n
            context.log.info(f"{source.name}: shard {i}/{len(shards)} {shard}: {len(result.docs)} docs, {len(result.quarantine)} quarantined")

        tables = storage.tables
        quarantine_frame = schemas.frame(quarantine, schemas.QUARANTINE)
        tables.write(QUARANTINE, quarantine_frame, source.name)
        failpoint("ingest")
        tables.write(RAW, schemas.frame(docs, schemas.DOCUMENTS), source.name)
        account = Account(
            rows_in=records,
            rows_out=tables.num_rows(RAW, source.name),
            quarantined=tables.num_rows(QUARANTINE, source.name),
        )
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "shards": dg.MetadataValue.int(len(shards)),
                "bytes": dg.MetadataValue.int(sum(len(d["text"].encode("utf-8", "surrogatepass")) for d in docs)),
                "quarantine": reason_table(quarantine_frame),
                "normalised": count_table(normalised, "fix"),
                "path": dg.MetadataValue.path(tables.url(RAW, source.name)),
            },
            check_results=[accounting_result(RAW, account)],
        )

    return [raw_documents]
