"""curate: HARE D1 heuristics per source, then exact + MinHash deduplication across sources."""

import hashlib
import json
import time

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.ingest.assets import RAW
from hare_assets.defs.metadata import count_table, frame_markdown, reason_table
from hare_assets.defs.resources import HareStorage
from hare_assets.lib.accounting import Account
from hare_assets.lib.curation import clean_frame, deduplicate_frame
from hare_assets.lib.dedup import MinHashParams
from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.profile import Profile, SourceConfig

CLEAN = "clean_documents"
DEDUP = "deduplicated_documents"


def _version(*parts: object) -> str:
    """Code version from the settings that shape an asset, so the UI marks it stale when they change."""
    def dump(obj):  # where a source's files live does not change what the rules do
        return obj.model_dump(mode="json", exclude={"path"} if isinstance(obj, SourceConfig) else None)

    blob = json.dumps(parts, default=dump, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_curate_assets(profile: Profile, partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=CLEAN,
        partitions_def=partitions,
        deps=[RAW],
        group_name="curate",
        kinds={"parquet", "polars"},
        code_version=_version(profile.clean, profile.sources),
        check_specs=[accounting_spec(CLEAN)],
        description=(
            "HARE D1 heuristics on one source: boilerplate markers, detokenisation, personal information "
            "masked or dropped, links stripped, incomplete and non-English samples removed, Gopher/C4 quality "
            f"rules. Removed rows stay in `{CLEAN}__removed` with their reason."
        ),
    )
    def clean_documents(context: dg.AssetExecutionContext, storage: HareStorage):
        source = profile.source(context.partition_key)
        tables = storage.tables
        raw = tables.read(RAW, source.name)
        started = time.perf_counter()
        result = clean_frame(raw, profile, source.name, log=context.log.info)
        seconds = time.perf_counter() - started
        tables.write(f"{CLEAN}__quarantine", result.quarantine, source.name)
        tables.write(f"{CLEAN}__removed", result.removed, source.name)
        failpoint("clean")
        tables.write(CLEAN, result.kept, source.name)
        removed = tables.read(f"{CLEAN}__removed", source.name, columns=["reason"])
        account = Account(
            rows_in=raw.height,
            rows_out=tables.num_rows(CLEAN, source.name),
            removed=Account.count(removed["reason"].to_list()),
            quarantined=tables.num_rows(f"{CLEAN}__quarantine", source.name),
        )
        mb = raw["text"].str.len_bytes().sum() / 1e6
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "removed_by_rule": reason_table(result.removed),
                "edits": count_table(result.edit_counts, "edit"),
                "bytes_in": dg.MetadataValue.int(int(raw["text"].str.len_bytes().sum())),
                "bytes_out": dg.MetadataValue.int(int(result.kept["text"].str.len_bytes().sum())),
                "throughput_mb_s": dg.MetadataValue.float(round(mb / max(seconds, 1e-9), 3)),
                "path": dg.MetadataValue.path(tables.url(CLEAN, source.name)),
            },
            check_results=[accounting_result(CLEAN, account)],
        )

    params = MinHashParams.from_profile(profile.dedup)

    @dg.asset(
        name=DEDUP,
        deps=[CLEAN],
        group_name="curate",
        kinds={"parquet", "polars"},
        code_version=_version(profile.dedup, [s.name for s in profile.sources]),
        check_specs=[accounting_spec(DEDUP)],
        description=(
            "Exact (normalised-text hash) then MinHash-LSH near-duplicate removal across all sources. "
            f"`{DEDUP}__removed` keeps each removed row with the doc it duplicates (kept_doc_id, "
            "kept_source/shard/row) and their Jaccard similarity; the earliest document in profile order is kept."
        ),
    )
    def deduplicated_documents(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        missing = [s.name for s in profile.sources if not tables.exists(CLEAN, s.name)]
        if missing:
            raise dg.Failure(
                f"{CLEAN} is not materialized for sources {missing}; materialize those partitions first "
                "(`hare demo` runs every partition)"
            )
        docs = pl.concat([tables.read(CLEAN, s.name) for s in profile.sources], how="vertical")
        started = time.perf_counter()
        result = deduplicate_frame(docs, profile, params, log=context.log.info)
        seconds = time.perf_counter() - started
        tables.write(f"{DEDUP}__removed", result.removed, None)
        failpoint("dedup")
        tables.write(DEDUP, result.kept, None)
        removed = tables.read(f"{DEDUP}__removed", columns=["reason", "source"])
        account = Account(
            rows_in=docs.height,
            rows_out=tables.num_rows(DEDUP),
            removed=Account.count(removed["reason"].to_list()),
        )
        per_source = (
            docs.group_by("source").len("rows_in")
            .join(result.kept.group_by("source").len("rows_out"), on="source", how="left")
            .fill_null(0)
            .sort("source")
        )
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "removed_by_reason": reason_table(result.removed),
                "per_source": frame_markdown(per_source),
                "clusters": dg.MetadataValue.int(result.removed["kept_doc_id"].n_unique()),
                "minhash": dg.MetadataValue.json(
                    {"ngram": params.ngram, "num_perm": params.num_perm, "bands": params.bands, "rows": params.rows,
                     "threshold": params.threshold, "verify": params.verify, "seed": params.seed, "engine": profile.dedup.engine}
                ),
                "throughput_docs_s": dg.MetadataValue.float(round(docs.height / max(seconds, 1e-9), 1)),
                "path": dg.MetadataValue.path(tables.url(DEDUP)),
            },
            check_results=[accounting_result(DEDUP, account)],
        )

    return [clean_documents, deduplicated_documents]
