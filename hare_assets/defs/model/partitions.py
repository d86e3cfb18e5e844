"""HARE's two training stages: stage1 = D1 only, stage2 = D1 + D2 + D3, continuing stage1."""

import dagster as dg

STAGES = dg.StaticPartitionsDefinition(["stage1", "stage2"])

