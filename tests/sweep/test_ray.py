"""The Ray backend on a real local cluster (``ray start --head`` on 127.0.0.1): the same per-episode accuracies
as the local backend, a killed Ray worker's job retried and recorded once, checkpoints brought back to the driver,
and an unreachable address refused in one line.

The cluster's node has a cache of its own, as a remote node would: only the raw datasets are shared.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from sweep_helpers import count_runs, grid, per_job, start_sweep, sweep_once, training_started, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("own_cache")]


def ray_command() -> str:
    found = shutil.which("ray", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed: CI installs '.[ray]'")
        pytest.skip("Ray is not installed (pip install 'fewshot[ray]')")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster with two CPUs, its own cache folder and temp folder; stopped after the module."""
    ray = ray_command()
    folder = tmp_path_factory.mktemp("ray")
    port = free_port()
    env = {**os.environ, "FEWSHOT_CACHE": str(folder / "node-cache"), "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(
        [
            ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
            "--num-gpus", "0", "--include-dashboard", "false", "--disable-usage-stats",
        ],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.1:{port}", folder / "node-cache"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    return sweep_once(tmp_path_factory.mktemp("local"))


def test_a_grid_on_ray_gives_the_local_backends_per_episode_accuracies(cluster, local_reference, tmp_path):
    address, node_cache = cluster
    store = tmp_path / "r.sqlite"
    done = run_cli(
        "sweep", str(grid(tmp_path)), "--results", str(store), "--backend", "ray", "--address", address,
        "--keep-checkpoints", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert per_job(store) == local_reference[1]
    assert count_runs(store) == (2, 2)
    with_checkpoints = run_cli("runs", "--results", str(store), "--json")
    assert with_checkpoints.returncode == 0
    driver_cache = Path(os.environ["FEWSHOT_CACHE"])
    brought = list((driver_cache / "checkpoints").glob("protonet-glyphs-*.pt"))
    assert brought and any((node_cache / "checkpoints" / p.name).exists() for p in brought)


def test_a_ray_worker_killed_in_the_middle_of_a_job_gets_it_retried_and_recorded_once(cluster, tmp_path):
    address, node_cache = cluster
    shutil.rmtree(node_cache / "locks", ignore_errors=True)
    store = tmp_path / "r.sqlite"
    # long enough a training (a few seconds) for the kill to land in the middle of it
    sweep = start_sweep(grid(tmp_path, budget="150steps"), store, "--backend", "ray", "--address", address)
    wait_for(lambda: training_started(node_cache))
    wait_for(lambda: any("run_job" in cmdline(pid) for pid in ray_task_processes()), timeout=60)
    killed = [pid for pid in ray_task_processes() if "run_job" in cmdline(pid)]
    os.kill(killed[0], signal.SIGKILL)
    out, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err
    assert count_runs(store) == (2, 2) and "2 runs recorded" in out


def test_an_unreachable_ray_address_is_one_line(tmp_path):
    ray_command()
    done = run_cli(
        "sweep", str(grid(tmp_path)), "--results", str(tmp_path / "r.sqlite"), "--backend", "ray",
        "--address", f"127.0.0.1:{free_port()}", timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot reach a Ray cluster at 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.sqlite").exists()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def ray_task_processes() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and cmdline(int(p)).startswith("ray::")]
