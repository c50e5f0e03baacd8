"""`llem doctor`: the CLI as a subprocess on this (GPU-less) machine, the GPU rows against a
described H100 (NVML is absent here), the cluster view against a real local Ray."""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata

import pytest

from llem.backends import REGISTRY
from llem.doctor import energy_checks, gpu_checks, torch_checks
from llem.measure.gpu import local_gpus
from llem.measure.rapl import domains
from tests.support.cli import run_cli

H100 = {"uuid": "GPU-0a1b", "index": 0, "name": "NVIDIA H100 80GB HBM3", "power_limit_w": 700.0,
        "mig_mode": False, "memory_total_mib": 81559.0, "energy_counter": True}


def doctor_rows(*args: str) -> tuple[int, list[dict[str, str]]]:
    r = run_cli("doctor", "--json", "--quick", *args)
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines()]


def test_doctor_reports_this_machine() -> None:
    rc, rows = doctor_rows()
    assert rc == 0
    by_item = {(r["area"], r["item"].split(" ")[0]): r for r in rows}
    gpus, reason = local_gpus()
    if not gpus:  # this machine: the missing GPU is a warning with its fix, not a failure
        gpu = by_item[("gpu", "GPUs")]
        assert gpu["state"] == "warn" and reason in gpu["detail"]
        assert "NVIDIA driver" in gpu["fix"] and "gpus_per_job: 0" in gpu["fix"]
        # nvidia-ml-py is suggested only where it is missing
        has_pynvml = importlib.util.find_spec("pynvml") is not None
        assert ("pip install nvidia-ml-py" in gpu["fix"]) is not has_pynvml
    rapl = by_item[("energy", "RAPL")]
    assert rapl["state"] == ("ok" if domains()[0] else "warn")
    if rapl["state"] == "warn":
        assert "/sys/class/powercap" in rapl["fix"]
    assert ("energy", "codecarbon") in by_item
    backends = {r["item"].split(" ")[0] for r in rows if r["area"] == "backend"}
    assert backends == set(REGISTRY)
    for r in rows:
        if r["area"] == "backend" and r["detail"].startswith("unsupported"):
            assert "supports Python" in r["fix"]  # building its venv here would fail
        elif r["area"] == "backend" and r["state"] != "ok":
            assert r["fix"].startswith(("llem env build", "pip install"))
        if r["area"] == "backend" and r["fix"].startswith("pip install 'llem["):
            # a package is suggested only when it is missing
            assert r["detail"].startswith("missing: lacks ")
    assert by_item[("ray", "ray")]["detail"].startswith(f"ray {metadata.version('ray')} ")
    assert by_item[("ray", "address")]["state"] == "info"


def test_doctor_table_and_unreachable_cluster() -> None:
    r = run_cli("doctor", "--quick")
    assert r.returncode == 0 and "llem doctor" in r.stdout and "energy" in r.stdout
    rc, rows = doctor_rows("--address", "127.0.0.1:1")  # nothing listens on port 1
    assert rc == 1
    (bad,) = [r for r in rows if r["state"] == "fail"]
    assert bad["item"] == "cluster 127.0.0.1:1" and "nothing answers" in bad["detail"]
    assert "ray start --head" in bad["fix"]


def test_gpu_rows_name_memory_driver_and_mig() -> None:
    mig = {**H100, "index": 1, "uuid": "GPU-2c3d", "mig_mode": True, "energy_counter": False}
    rows = gpu_checks([H100, mig], None, {"driver_version": "580.82", "cuda_version": "13.0"})
    assert [(c.item, c.state) for c in rows] == [("driver", "ok"), ("GPU 0", "ok"),
                                                 ("GPU 1", "warn")]
    assert rows[0].detail == "NVIDIA driver 580.82, CUDA 13.0"
    assert rows[1].detail == ("NVIDIA H100 80GB HBM3, 79.6 GiB, power limit 700 W, GPU-0a1b, "
                              "MIG off")
    assert rows[2].detail.endswith("MIG on") and "-mig 0" in rows[2].fix
    energy = energy_checks([H100, mig], None, ["package-0", "dram"])
    assert [(c.item, c.state) for c in energy][:2] == [("NVML energy counter", "ok"),
                                                       ("RAPL (CPU, DRAM)", "ok")]
    assert energy[0].detail == "answers on 1 of 2 GPUs"
    assert energy[1].detail == "package-0, dram"
    lost = gpu_checks([H100], "NVML query failed: NVMLError_GpuIsLost", {})
    assert lost[-1].state == "fail" and "GpuIsLost" in lost[-1].detail


@pytest.mark.slow
def test_cluster_view_probes_each_gpu_node(ray_gpus) -> None:  # type: ignore[no-untyped-def]
    """A real Ray with 2 declared GPUs: the node is listed with them; its probe ran there
    (NVML is absent on this machine, so it found no GPU details)."""
    from llem.scheduler.cluster import describe

    info = describe("ignored: already connected")
    assert info["ray_version"] == metadata.version("ray")
    assert info["gpus"] == 2.0
    (node,) = info["nodes"]
    assert node["alive"] and node["gpus"] == 2.0 and node["gpu_info"] == local_gpus()[0]


def test_a_cpu_only_torch_on_a_gpu_machine_fails_with_the_fix() -> None:
    (bad,) = torch_checks("2.13.0+cpu", have_gpus=True)
    assert bad.state == "fail" and "CPU-only build" in bad.detail
    assert "--index-url https://download.pytorch.org/whl/cu" in bad.fix
    assert torch_checks("2.13.0+cpu", have_gpus=False)[0].state == "ok"
    assert torch_checks("2.11.0", have_gpus=True)[0].detail == "torch 2.11.0 (CUDA build)"
    assert torch_checks(None, have_gpus=False)[0].state == "warn"
