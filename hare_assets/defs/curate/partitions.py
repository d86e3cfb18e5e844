"""Topic partitions: registered by `topic_clusters`, one per k-means cluster, keys stable across reruns."""

import dagster as dg

TOPICS = dg.DynamicPartitionsDefinition(name="topics")
