"""Block partitions: registered by `shard_manifest`, one per block of shards (`web-00042`); keys never change."""

import dagster as dg

BLOCKS = dg.DynamicPartitionsDefinition(name="blocks")
