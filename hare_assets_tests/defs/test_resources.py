"""The job launcher's command lines and pod spec (the parts that do not need a cluster)."""

import json
import sys

import dagster as dg
import pytest

from hare_assets.defs.graph import launcher_resource
from hare_assets.defs.resources import JobLauncher, launch_command, load_pod_spec
from hare_assets.lib.packing import pack_documents
from hare_assets.lib.profile import load_profile
from hare_assets.lib.training import train
from hare_assets_tests.lib.test_packing import make_documents
from hare_assets_tests.lib.test_training import micro_config


def test_one_process_runs_the_module_and_several_go_through_accelerate_or_torchrun():
    config = {"data": "/d", "max_steps": 3, "device": "auto"}
    one = launch_command("hare_assets.lib.train_job", config, 1, sys.executable)
    assert one[:3] == [sys.executable, "-m", "hare_assets.lib.train_job"] and json.loads(one[-1]) == config
    many = launch_command("hare_assets.lib.train_job", config, 8, "python")
    assert many[:6] == ["python", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "8"]
    assert many[-4:-1] == ["-m", "hare_assets.lib.train_job", "--config-json"]
    cpu = launch_command("hare_assets.lib.train_job", {**config, "device": "cpu"}, 2, "python")
    assert cpu[:6] == ["python", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    launcher = JobLauncher(processes=8)
    assert launcher.command("m", config)[1:3] == ["-m", "m"]  # evaluation and scoring: one process
    assert "--multi_gpu" in launcher.command("m", config, distributed=True)


@pytest.mark.parametrize("device", ["cpu", "auto"])  # torchrun, and the `accelerate launch --multi_gpu` line
def test_two_processes_train_like_one_with_the_same_global_batch(device, tmp_path):
    """DDP through the launcher (gloo on CPU): rank 0 reports through Pipes, and the loss
    trajectory is the one-process run's with the same blocks per step."""
    pack_documents(make_documents(60), tmp_path / "packed", seq_len=64)
    single = train(micro_config(tmp_path / "packed", tmp_path / "one", micro_batch_size=8, max_steps=6, save_every=0))
    config = micro_config(tmp_path / "packed", tmp_path / "two", micro_batch_size=4, max_steps=6, save_every=0,
                          device=device, num_threads=1)  # fmt: skip

    @dg.asset
    def checkpoint(context: dg.AssetExecutionContext, launcher: JobLauncher):
        return launcher.run(context, "hare_assets.lib.train_job", config.to_dict(), distributed=True).get_materialize_result()

    run = dg.materialize([checkpoint], resources={"launcher": JobLauncher(processes=2)})
    assert run.success
    [materialization] = run.asset_materializations_for_node("checkpoint")  # one report, from rank 0
    curve = [loss for _, loss in materialization.metadata["loss_curve"].value]
    assert materialization.metadata["steps"].value == 6
    assert curve == pytest.approx(single.loss_curve, abs=1e-4)
    assert json.loads((tmp_path / "two" / "result.json").read_text())["tokens"] == 6 * 8 * 64


def test_profiles_choose_the_launcher_and_the_pod_spec_loads():
    assert launcher_resource(load_profile("demo")).launcher == "subprocess"
    assert launcher_resource(load_profile("gpu")).processes == 8
    cluster = launcher_resource(load_profile("cluster"))
    assert cluster.launcher == "k8s" and cluster.namespace == "hare"
    spec = load_pod_spec(cluster.pod_spec)
    [container] = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 and spec["restartPolicy"] == "Never"
    assert {e["name"] for e in container["env"]} >= {"HARE_HOME", "HARE_ARTIFACTS"}
