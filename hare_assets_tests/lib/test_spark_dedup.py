"""The Spark engine runs text-dedup's real job under spark-submit; without GraphFrames it must say so."""

import shutil

import pytest

from hare_assets.lib.dedup import MinHashParams
from hare_assets.lib.spark_dedup import job_script, spark_command, spark_near_duplicates


def test_command_passes_the_profile_parameters(tmp_path):
    cmd = spark_command(tmp_path / "in", tmp_path / "out", MinHashParams(ngram=7, num_perm=64, bands=8, rows=8), ["--master", "local[2]"])
    assert cmd[1:3] == ["--master", "local[2]"] and cmd[3] == str(job_script())
    args = dict(zip(cmd[4::2], cmd[5::2]))
    assert args["--ngram_size"] == "7" and args["--num_perm"] == "64" and args["--b"] == "8" and args["--r"] == "8"
    assert args["--index"] == "__hare_id__" and args["--min_length"] == "0"
    assert job_script().is_file()


@pytest.mark.skipif(shutil.which("java") is None, reason="spark-submit needs a Java runtime")
def test_missing_graphframes_is_a_clear_error(tmp_path):
    texts = ["the same words in the same order again and again"] * 3
    with pytest.raises(RuntimeError, match="GraphFrames") as err:
        spark_near_duplicates(texts, [0, 1, 2], MinHashParams(), tmp_path, ["--master", "local[1]"])
    assert "No module named 'graphframes'" in str(err.value)
