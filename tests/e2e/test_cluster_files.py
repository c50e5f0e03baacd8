"""cluster/: the local multi-node script, the `ray up` YAML and the KubeRay manifest parse,
pin the driver's Ray version and say what a user must change."""

from __future__ import annotations

import subprocess

import ray
import yaml

from tests.support.paths import ROOT

CLUSTER = ROOT / "cluster"


def test_local_script_is_valid_bash() -> None:
    script = CLUSTER / "local.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert "--num-gpus" in text and "accelerator_type:" in text and "--labels" in text


def test_ray_up_yaml() -> None:
    doc = yaml.safe_load((CLUSTER / "ray-up.yaml").read_text())
    assert doc["head_node_type"] in doc["available_node_types"]
    assert any(f"ray[default]=={ray.__version__}" in c for c in doc["setup_commands"])
    assert any("llem env build vllm" in c for c in doc["setup_commands"])
    assert "CHANGE" in (CLUSTER / "ray-up.yaml").read_text()


def test_kuberay_manifest() -> None:
    doc = yaml.safe_load((CLUSTER / "kuberay.yaml").read_text())
    assert doc["kind"] == "RayCluster" and doc["spec"]["rayVersion"] == ray.__version__
    worker = doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert "environments: {vllm: {kind: image" in (CLUSTER / "kuberay.yaml").read_text()
