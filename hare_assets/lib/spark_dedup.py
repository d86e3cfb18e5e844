"""Near-duplicate detection through text-dedup's Spark MinHash job, for corpora beyond one machine.

The job (`text_dedup/minhash_spark.py`) runs under `spark-submit`; it needs the GraphFrames
Spark package, e.g. `dedup.spark_submit: ["--master", "yarn", "--packages",
"graphframes:graphframes:0.8.3-spark3.5-s_2.12"]` and `pip install graphframes-py` on the
driver. With `--debug` it writes the cluster assignment (`id`, `component`), which is read
back here: in each component the smallest id (the earliest document in stable order) is kept,
the same rule as the local engine. Exact duplicates are removed locally first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from hare_assets.lib.dedup import NEAR, Duplicate, MinHashParams, jaccard, shingles

ID = "__hare_id__"


def job_script() -> Path:
    """Locate the job file without importing text_dedup.minhash* (which would change process state)."""
    import text_dedup

    return Path(text_dedup.__file__).parent / "minhash_spark.py"


def spark_submit() -> list[str]:
    from pyspark.find_spark_home import _find_spark_home

    return [str(Path(_find_spark_home()) / "bin" / "spark-submit")]


def spark_command(input_dir: Path, output_dir: Path, params: MinHashParams, extra: list[str]) -> list[str]:
    return [
        *spark_submit(), *extra, str(job_script()),
        "--input", str(input_dir), "--output", str(output_dir), "--column", "text", "--index", ID,
        "--threshold", str(params.threshold), "--ngram_size", str(params.ngram), "--min_length", "0",
        "--num_perm", str(params.num_perm), "--b", str(params.bands), "--r", str(params.rows),
        "--checkpoint_dir", str(output_dir.parent / "checkpoints"), "--debug",
    ]


def spark_near_duplicates(
    texts: list[str], indices: list[int], params: MinHashParams, workdir: Path, extra: list[str]
) -> list[Duplicate]:
    """Near duplicates among `texts` (positions `indices` in the caller's order) found by the Spark job."""
    input_dir, output_dir = workdir / "input", workdir / "output"
    input_dir.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({ID: indices, "text": texts}, schema={ID: pl.Int64, "text": pl.String}).write_parquet(input_dir / "part-0.parquet")
    cmd = spark_command(input_dir, output_dir, params, extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assignment = Path(f"{output_dir}-assignment/assignment.parquet")
    if proc.returncode != 0 or not assignment.exists():
        if proc.returncode == 0:  # the job exits early when no band collides
            return []
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip() and " WARN " not in ln and " INFO " not in ln]
        tail = "\n".join(lines[-15:])
        raise RuntimeError(
            f"text-dedup's Spark MinHash job failed (exit {proc.returncode}). It needs the GraphFrames Spark package "
            "(dedup.spark_submit: ['--packages', 'graphframes:graphframes:<version>']) and `pip install graphframes-py`.\n"
            f"command: {' '.join(cmd)}\n{tail}"
        )
    components = pl.read_parquet(assignment).rename({"id": ID})
    text_of = dict(zip(indices, texts))
    return [
        Duplicate(removed, kept, NEAR, jaccard(shingles(text_of[kept], params.ngram), shingles(text_of[removed], params.ngram)))
        for removed, kept in components.filter(pl.col(ID) != pl.col("component")).select(ID, "component").iter_rows()
    ]
