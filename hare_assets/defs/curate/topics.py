"""curate (semantic diversity): embeddings of the deduplicated D1, k-means topics as dynamic
partitions with stable keys, and each topic's documents with diversity-balancing weights."""

import time

import dagster as dg
import numpy as np
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.curate.assets import DEDUP
from hare_assets.defs.curate.partitions import TOPICS
from hare_assets.defs.metadata import frame_markdown, png_markdown
from hare_assets.defs.resources import HareStorage
from hare_assets.lib import schemas
from hare_assets.lib.accounting import Account
from hare_assets.lib.embed import Embedder
from hare_assets.lib.profile import Profile
from hare_assets.lib.topics import balanced_weights, cluster, keywords, purity, stable_topic_keys, topic_map_png, topic_stats

EMBEDDINGS = "document_embeddings"
CLUSTERS = "topic_clusters"
ASSIGNMENTS = "topic_clusters__assignments"
CENTROIDS = "topic_clusters__centroids"
TOPIC_DOCUMENTS = "topic_documents"
SYNTHETIC = "synthetic_documents"
# Every table partitioned by topic (the assets downstream of the `topics` partitions), deleted with a vanished topic.
TOPIC_TABLES = (TOPIC_DOCUMENTS, SYNTHETIC, "decontaminated_synthetic")


def build_topic_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    cfg = profile.embed

    def make_embedder() -> Embedder:
        return Embedder(model=cfg.model, device=cfg.device, precision=cfg.precision, batch_size=cfg.batch_size, max_seq_length=cfg.max_seq_length,
                        chunk_words=cfg.chunk_words, max_chunks=cfg.max_chunks)

    @dg.asset(
        name=EMBEDDINGS,
        deps=[DEDUP],
        group_name="curate",
        kinds={"parquet", "pytorch"},
        check_specs=[accounting_spec(EMBEDDINGS)],
        description=(
            "One sentence embedding per deduplicated document (default: all-MiniLM-L6-v2, offline). Long documents: "
            "the mean of up to embed.max_chunks chunks of embed.chunk_words words spread across the text. Cached by "
            "doc_id and model, so a rerun embeds only new documents."
        ),
    )
    def document_embeddings(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        docs = tables.read(DEDUP, columns=["doc_id", "text"])
        embedder = make_embedder()
        cached = pl.DataFrame(schema={"doc_id": pl.String, "model": pl.String, "embedding": pl.List(pl.Float32)})
        if tables.exists(EMBEDDINGS):
            cached = tables.read(EMBEDDINGS).filter(pl.col("model") == embedder.model_id)
        todo = docs.join(cached.select("doc_id"), on="doc_id", how="anti")
        started = time.perf_counter()
        vectors = embedder.embed(todo["text"].to_list(), progress=lambda d, t: context.log.info(f"embedded {d}/{t}"))
        seconds = time.perf_counter() - started
        fresh = pl.DataFrame({"doc_id": todo["doc_id"], "model": embedder.model_id,
                              "embedding": pl.Series(vectors.tolist(), dtype=pl.List(pl.Float32))})
        out = docs.select("doc_id").join(pl.concat([cached, fresh]), on="doc_id", how="left")
        tables.write(EMBEDDINGS, out)
        account = Account(rows_in=docs.height, rows_out=tables.num_rows(EMBEDDINGS))
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "model": dg.MetadataValue.text(embedder.model_id),
                "dimensions": dg.MetadataValue.int(embedder.dim),
                "embedded_now": dg.MetadataValue.int(todo.height),
                "cache_hits": dg.MetadataValue.int(docs.height - todo.height),
                "docs_per_second": dg.MetadataValue.float(round(todo.height / max(seconds, 1e-9), 1)),
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
        description=(
            "Spherical k-means topics over the embeddings (topics.k), labelled by c-TF-IDF keywords. Registers one "
            "`topics` dynamic partition per cluster; keys stay the same across reruns when a centroid moves little, "
            "and vanished topics are removed with their stored partitions."
        ),
    )
    def topic_clusters(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        emb = tables.read(EMBEDDINGS)
        docs = tables.read(DEDUP, columns=["doc_id", "source", "text"])
        joined = emb.join(docs, on="doc_id", how="inner")
        matrix = np.asarray(joined["embedding"].to_list(), dtype=np.float32)
        result = cluster(matrix, topics.k, seed=topics.seed)
        previous = None
        if tables.exists(CENTROIDS):
            prev = tables.read(CENTROIDS)
            previous = {k: np.asarray(v, dtype=np.float32) for k, v in zip(prev["topic"], prev["centroid"])}
        keys = stable_topic_keys(result.centroids, previous, topics.key_min_similarity)
        words = keywords(joined["text"].to_list(), result.labels)
        labels = [keys.keys[int(i)] for i in result.labels]
        stats = topic_stats(matrix, result.labels, result.centroids)
        sizes = {keys.keys[i]: s.size for i, s in stats.items()}
        weights = balanced_weights(sizes, topics.cap_share)
        summary = pl.DataFrame({
            "topic": [keys.keys[i] for i in stats],
            "keywords": [words.get(i, []) for i in stats],
            "size": [s.size for s in stats.values()],
            "cohesion": [s.cohesion for s in stats.values()],
            "diversity": [s.diversity for s in stats.values()],
            "weight": [float(weights[keys.keys[i]]) for i in stats],
        }, schema_overrides={"keywords": pl.List(pl.String)}).sort("topic")
        assignments = pl.DataFrame({"doc_id": joined["doc_id"], "topic": labels,
                                    "similarity": np.asarray(result.similarity, dtype=np.float32)})
        centroids = pl.DataFrame({"topic": [keys.keys[i] for i in range(len(result.centroids))],
                                  "centroid": pl.Series([list(c) for c in result.centroids], dtype=pl.List(pl.Float32))})
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
            instance.delete_dynamic_partition(TOPICS.name, key)
            for table in TOPIC_TABLES:
                for suffix in ("", "__removed", "__quarantine", "__hits"):
                    tables.delete(f"{table}{suffix}", key)
        context.log.info(f"topics: {len(current)} ({len(new)} new, {len(vanished)} vanished: {vanished})")
        composition = (joined.select("source").with_columns(topic=pl.Series(labels))
                       .group_by("topic", "source").len().pivot(on="source", index="topic", values="len").fill_null(0).sort("topic"))
        png = topic_map_png(matrix, result.labels, {i: f"{keys.keys[i]}: {', '.join(words.get(i, [])[:3])}" for i in stats})
        account = Account(rows_in=emb.height, rows_out=tables.num_rows(ASSIGNMENTS), removed={"no_document": emb.height - joined.height})
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
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
        description=(
            "The deduplicated D1 documents of one topic with a diversity-balancing sampling weight: no topic takes "
            "more than topics.cap_share of what is sampled from D1."
        ),
    )
    def topic_documents(context: dg.AssetExecutionContext, storage: HareStorage):
        topic = context.partition_key
        tables = storage.tables
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
