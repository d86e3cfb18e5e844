"""Checkpoint run folders: one per checkpoint id, the newest `keep_checkpoints` kept on disk."""

import os

from hare_assets.defs.model.assets import prune_runs


def test_prune_keeps_the_newest_runs_of_the_stage_only(tmp_path):
    stage_dir = tmp_path / "stage1"
    for age, name in enumerate(["stage1-c", "stage1-b", "stage1-a"]):  # stage1-c newest
        run = stage_dir / name / "checkpoint"
        run.mkdir(parents=True)
        (run / "model.safetensors").write_bytes(b"w")
        os.utime(stage_dir / name, (1_000_000 - age, 1_000_000 - age))
    (stage_dir / "loose-file.txt").write_text("not a run")
    (stage_dir / "stage2-x").mkdir()  # not this stage's
    removed = prune_runs(stage_dir, "stage1", keep=2)
    assert [p.name for p in removed] == ["stage1-a"]
    assert sorted(p.name for p in stage_dir.iterdir()) == ["loose-file.txt", "stage1-b", "stage1-c", "stage2-x"]
    assert prune_runs(stage_dir, "stage1", keep=2) == []
