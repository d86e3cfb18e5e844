"""The job launcher's command lines and pod spec (the parts that do not need a cluster)."""

import json
import sys

from hare_assets.defs.graph import launcher_resource
from hare_assets.defs.resources import launch_command, load_pod_spec
from hare_assets.lib.profile import load_profile


def test_one_process_runs_the_module_and_several_go_through_accelerate():
    config = {"data": "/d", "max_steps": 3}
    one = launch_command("hare_assets.lib.train_job", config, 1, sys.executable)
    assert one[:3] == [sys.executable, "-m", "hare_assets.lib.train_job"] and json.loads(one[-1]) == config
    many = launch_command("hare_assets.lib.train_job", config, 8, "python")
    assert many[:5] == ["python", "-m", "accelerate.commands.launch", "--num_processes", "8"]
    assert many[5:8] == ["-m", "hare_assets.lib.train_job", "--config-json"]


def test_profiles_choose_the_launcher_and_the_pod_spec_loads():
    assert launcher_resource(load_profile("demo")).launcher == "subprocess"
    assert launcher_resource(load_profile("gpu")).processes == 8
    cluster = launcher_resource(load_profile("cluster"))
    assert cluster.launcher == "k8s" and cluster.namespace == "hare"
    spec = load_pod_spec(cluster.pod_spec)
    [container] = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 and spec["restartPolicy"] == "Never"
    assert {e["name"] for e in container["env"]} >= {"HARE_HOME", "HARE_ARTIFACTS"}
