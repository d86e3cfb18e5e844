"""curate (semantic diversity): embeddings of the deduplicated D1, k-means topics as dynamic
partitions with stable keys, and each topic's documents with diversity-balancing weights."""

import time
from functools import partial

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.blocks import block_jobs, run_stage
from hare_assets.defs.curate.assets import DEDUP
from hare_assets.defs.curate.partitions import TOPICS
from hare_assets.defs.ingest.partitions import BLOCKS
from hare_assets.defs.metadata import frame_markdown, png_markdown
from hare_assets.defs.ranges import backfill_policy, each_partition
from hare_assets.defs.resources import HareStorage
from hare_assets.lib import schemas
from hare_assets.lib.accounting import Account
from hare_assets.lib.blocks import embed_part, iter_part, stage_fingerprint
from hare_assets.lib.embed import Embedder, embedding_key
from hare_assets.lib.profile import Profile
from hare_assets.lib.shard_pools import LocalPool
from hare_assets.lib.storage import TableStore
from hare_assets.lib.topics import (
    balanced_weights,
    cluster,
    extend,
    keywords,
    purity,
    stable_topic_keys,
    topic_map_png,
    topic_stats,
)

EMBEDDINGS = "document_embeddings"
CLUSTERS = "topic_clusters"
ASSIGNMENTS = "topic_clusters__assignments"
CENTROIDS = "topic_clusters__centroids"
TOPIC_DOCUMENTS = "topic_documents"
SYNTHETIC = "synthetic_documents"
# Every table partitioned by topic (the assets downstream of the `topics` partitions), archived with a vanished topic.
TOPIC_TABLES = (TOPIC_DOCUMENTS, SYNTHETIC, "decontaminated_synthetic")


def _dimensions(tables: TableStore, blocks: list[str]) -> int:
    """The vectors' length, from the first stored row (one row group read, not a whole block)."""
    for block in blocks:
        for part in tables.committed(EMBEDDINGS, block)["parts"]:
            for frame in iter_part(tables, EMBEDDINGS, block, part, columns=["embedding"], batch=1):
                return len(frame["embedding"][0])
    return 0


class ClusterConfig(dg.Config):
    recluster: bool = Field(False, description="re-cluster every document from scratch instead of adding new documents "
                                               "to the existing topics (topics that vanish are archived)")


def archive_topic(tables: TableStore, key: str) -> list[str]:
    """Move a vanished topic's stored partitions to `<table>__archived` (same key): what was generated for it
    is kept, out of the live tables. Returns the tables moved."""
    moved = []
    for table in TOPIC_TABLES:
        for suffix in ("", "__removed", "__quarantine", "__hits"):
            name = f"{table}{suffix}"
            if tables.exists(name, key):
                tables.write(f"{name}__archived", tables.read(name, key), key)
                tables.delete(name, key)
                moved.append(name)
    return moved


def build_topic_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    cfg = profile.embed

    def make_embedder() -> Embedder:
        return Embedder(model=cfg.model, device=cfg.device, precision=cfg.precision, batch_size=cfg.batch_size, max_seq_length=cfg.max_seq_length,
                        chunk_words=cfg.chunk_words, max_chunks=cfg.max_chunks)

    @dg.asset(
        name=EMBEDDINGS,
        deps=[dg.AssetDep(DEDUP, partition_mapping=dg.AllPartitionMapping())],
        group_name="curate",
        kinds={"parquet", "pytorch"},
        check_specs=[accounting_spec(EMBEDDINGS)],
        description=(
            "One sentence embedding per deduplicated document (default: all-MiniLM-L6-v2, offline). Long documents: "
            "the mean of up to embed.max_chunks chunks of embed.chunk_words words spread across the text. Stored per "
            "block and shard as each shard is done, so a crash keeps the finished shards; a rerun embeds only new or "
            "changed shards, and reuses the vectors of a changed shard's documents by doc_id."
        ),
    )
    def document_embeddings(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        blocks = sorted(set(context.instance.get_dynamic_partitions(BLOCKS.name)))
        missing = [b for b in blocks if tables.committed(DEDUP, b) is None]
        if missing:
            raise dg.Failure(f"{DEDUP} is not materialized for blocks {missing[:5]}{' …' if len(missing) > 5 else ''}; "
                             "materialize those partitions first (`hare demo` runs every partition)")
        model_id = embedding_key(cfg.model, cfg.device, cfg.max_seq_length, cfg.chunk_words, cfg.max_chunks, cfg.precision)
        tables.delete(EMBEDDINGS)  # the single file of versions before per-block embeddings
        loaded: list[Embedder] = []

        def embed(texts: list[str]) -> np.ndarray:
            if not loaded:  # the model loads only when a shard needs it
                loaded.append(make_embedder())
            return loaded[0].embed(texts)

        started = time.perf_counter()
        runs = {block: run_stage(context, tables, EMBEDDINGS, [], block_jobs(tables, block, DEDUP, model_id),
                                 partial(embed_part, tables, DEDUP, EMBEDDINGS, block, embed, model_id, profile.ingest.batch_records),
                                 LocalPool(1), block=block)
                for block in blocks}
        seconds = time.perf_counter() - started
        embedded = sum(r.receipts[part]["embedded"] for r in runs.values() for part in r.receipts if r.receipts[part]["shard"] in r.read)
        account = Account(rows_in=sum(tables.num_rows(DEDUP, b) for b in blocks), rows_out=tables.num_rows(EMBEDDINGS))
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "model": dg.MetadataValue.text(model_id),
                "dimensions": dg.MetadataValue.int(_dimensions(tables, blocks)),
                "blocks": dg.MetadataValue.int(len(blocks)),
                "shards_read": dg.MetadataValue.int(sum(len(r.read) for r in runs.values())),
                "shards_skipped": dg.MetadataValue.int(sum(len(r.skipped) for r in runs.values())),
                "embedded_now": dg.MetadataValue.int(embedded),
                "cache_hits": dg.MetadataValue.int(account.rows_in - embedded),
                "docs_per_second": dg.MetadataValue.float(round(embedded / max(seconds, 1e-9), 1)),
            },
            check_results=[accounting_result(EMBEDDINGS, account)],
        )

    topics = profile.topics

    @dg.asset(
        name=CLUSTERS,
        deps=[EMBEDDINGS],
        group_name="curate",
        kinds={"parquet", "scikitlearn"},
        check_specs=[accounting_spec(CLUSTERS)],
        code_version=stage_fingerprint(topics.k, topics.seed),
        description=(
            "Spherical k-means topics over the embeddings (topics.k), labelled by c-TF-IDF keywords, one `topics` "
            "dynamic partition per cluster. New documents join the nearest existing topic: keys, centroids and the "
            "documents already assigned stay, so each topic's D2 stays valid. A full re-clustering happens when "
            "topics.k, topics.seed or the embedding model changed, or when asked (run config `recluster: true`); "
            "then keys follow centroids that moved little, and vanished topics are archived with their D2 "
            "(`<table>__archived`)."
        ),
    )
    def topic_clusters(context: dg.AssetExecutionContext, storage: HareStorage, config: ClusterConfig):
        tables = storage.tables
        emb = tables.read(EMBEDDINGS)
        docs = tables.read(DEDUP, columns=["doc_id", "source", "text"])
        joined = emb.join(docs, on="doc_id", how="inner")
        matrix = np.asarray(joined["embedding"].to_list(), dtype=np.float32)
        fit = stage_fingerprint(topics.k, topics.seed, sorted(set(emb["model"])))
        prev = tables.read(CENTROIDS) if tables.exists(CENTROIDS) else None
        previous = None if prev is None else {k: np.asarray(v, dtype=np.float32) for k, v in zip(prev["topic"], prev["centroid"])}
        why = ("asked (recluster: true)" if config.recluster else "no topics yet" if prev is None
               else "topics.k, topics.seed or the embedding model changed" if "fit" not in prev.columns or prev["fit"][0] != fit
               else None)
        if why is None:  # new documents join the topics as they are
            keys = prev["topic"].to_list()
            earlier = tables.read(ASSIGNMENTS)
            before = earlier.select("doc_id", pl.col("topic").replace_strict(
                {k: i for i, k in enumerate(keys)}, return_dtype=pl.Int64).alias("label"))
            known = joined.select("doc_id").join(before, on="doc_id", how="left")["label"].fill_null(-1).to_numpy()
            result = extend(matrix, np.stack(list(previous.values())), known)
            mode = f"{int((known < 0).sum())} new documents added to the existing topics"
        else:
            earlier = None
            result = cluster(matrix, topics.k, seed=topics.seed)
            keys = stable_topic_keys(result.centroids, previous, topics.key_min_similarity).keys
            mode = f"re-clustered: {why}"
        context.log.info(f"topics: {mode}")
        words = keywords(joined["text"].to_list(), result.labels)
        labels = [keys[int(i)] for i in result.labels]
        stats = topic_stats(matrix, result.labels, result.centroids)
        sizes = {keys[i]: s.size for i, s in stats.items()}
        weights = balanced_weights(sizes, topics.cap_share)
        summary = pl.DataFrame({
            "topic": [keys[i] for i in stats],
            "keywords": [words.get(i, []) for i in stats],
            "size": [s.size for s in stats.values()],
            "cohesion": [s.cohesion for s in stats.values()],
            "diversity": [s.diversity for s in stats.values()],
            "weight": [float(weights[keys[i]]) for i in stats],
        }, schema_overrides={"keywords": pl.List(pl.String)}).sort("topic")
        assignments = pl.DataFrame({"doc_id": joined["doc_id"], "topic": labels,
                                    "similarity": np.asarray(result.similarity, dtype=np.float32)})
        if earlier is not None:  # documents assigned before keep their row as it was, similarity to the last bit
            assignments = assignments.update(earlier.select("doc_id", "similarity"), on="doc_id")
        centroids = pl.DataFrame({"topic": [keys[i] for i in range(len(result.centroids))],
                                  "centroid": pl.Series([list(c) for c in result.centroids], dtype=pl.List(pl.Float32)),
                                  "fit": fit})
        tables.write(ASSIGNMENTS, assignments)
        tables.write(CENTROIDS, centroids)
        tables.write(CLUSTERS, summary)

        instance = context.instance
        registered = set(instance.get_dynamic_partitions(TOPICS.name))
        current = set(summary["topic"])
        new = sorted(current - registered)
        if new:
            instance.add_dynamic_partitions(TOPICS.name, new)
        vanished = sorted(registered - current)
        for key in vanished:
            archived = archive_topic(tables, key)
            instance.delete_dynamic_partition(TOPICS.name, key)
            context.log.info(f"topic {key} vanished; archived {archived or 'nothing (never materialized)'}")
        context.log.info(f"topics: {len(current)} ({len(new)} new, {len(vanished)} vanished: {vanished})")
        composition = (joined.select("source").with_columns(topic=pl.Series(labels))
                       .group_by("topic", "source").len().pivot(on="source", index="topic", values="len").fill_null(0).sort("topic"))
        png = topic_map_png(matrix, result.labels, {i: f"{keys[i]}: {', '.join(words.get(i, [])[:3])}" for i in stats})
        account = Account(rows_in=emb.height, rows_out=tables.num_rows(ASSIGNMENTS), removed={"no_document": emb.height - joined.height})
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "mode": dg.MetadataValue.text(mode),
                "topics": frame_markdown(summary.with_columns(pl.col("keywords").list.join(", "),
                                                              pl.col("cohesion", "diversity", "weight").round(3))),
                "sources_per_topic": frame_markdown(composition),
                "source_purity": dg.MetadataValue.float(round(purity(result.labels, joined["source"].to_list()), 3)),
                "topic_map": png_markdown(png, "documents by topic (PCA)"),
                "new_topics": dg.MetadataValue.text(", ".join(new) or "none"),
                "vanished_topics": dg.MetadataValue.text(", ".join(vanished) or "none"),
            },
            check_results=[accounting_result(CLUSTERS, account)],
        )

    @dg.asset(
        name=TOPIC_DOCUMENTS,
        partitions_def=TOPICS,
        deps=[CLUSTERS],
        group_name="curate",
        kinds={"parquet", "polars"},
        check_specs=[accounting_spec(TOPIC_DOCUMENTS)],
        backfill_policy=backfill_policy(),
        description=(
            "The deduplicated D1 documents of one topic with a diversity-balancing sampling weight: no topic takes "
            "more than topics.cap_share of what is sampled from D1."
        ),
    )
    def topic_documents(context: dg.AssetExecutionContext, storage: HareStorage):
        return each_partition(context, lambda topic: _topic_documents(storage.tables, topic))

    def _topic_documents(tables, topic: str) -> dg.MaterializeResult:
        assigned = tables.read(ASSIGNMENTS).filter(pl.col("topic") == topic)
        if assigned.is_empty():
            raise dg.Failure(f"topic {topic!r} has no documents in {CLUSTERS}; rematerialize {CLUSTERS} (it may have vanished)")
        weight = tables.read(CLUSTERS).filter(pl.col("topic") == topic)["weight"].item()
        docs = tables.read(DEDUP).join(assigned, on="doc_id", how="inner").with_columns(pl.lit(weight).alias("weight"))
        tables.write(TOPIC_DOCUMENTS, docs.select(list(schemas.TOPIC_DOCUMENTS)).cast(schemas.TOPIC_DOCUMENTS), topic)
        account = Account(rows_in=assigned.height, rows_out=tables.num_rows(TOPIC_DOCUMENTS, topic))
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "weight": dg.MetadataValue.float(float(weight)),
                "sources": frame_markdown(docs.group_by("source").len().sort("source")),
            },
            check_results=[accounting_result(TOPIC_DOCUMENTS, account)],
        )

    return [document_embeddings, topic_clusters, topic_documents]
