"""A real two-node Ray cluster started with `ray start` (token authentication on), driven by
`tuner.sweep --address`: CPU trials spread over both nodes, GPU trials land only where GPUs are declared."""
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow  # a real `ray start` cluster: about 90 s

RAY = str(Path(sys.executable).with_name("ray"))
TINY = ["--set", "arch=resnet18_w8", "--set", "source_images=400", "--set", "source_iters=20",
        "--set", "fraction=0.1", "--set", "batch_size=16", "--space", "lambda_feat", "--method", "delta",
        "--iters", "40", "--no-attack"]
NODES_SCRIPT = ("import json, ray; ray.init(address='{address}', log_to_driver=False); "
                "print(json.dumps([[n['NodeID'], n['Resources'].get('GPU', 0)] for n in ray.nodes() if n['Alive']]))")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def token_cluster():
    """Head without GPUs + a worker declaring 2 logical GPUs, both with token auth; stopped by `ray stop`."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    address = f"127.0.0.1:{free_port()}"
    start = [RAY, "start", "--disable-usage-stats", "--num-cpus", "2"]
    try:
        subprocess.run([*start, "--head", "--port", address.split(":")[1], "--num-gpus", "0",
                        "--include-dashboard", "false"], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([*start, "--address", address, "--num-gpus", "2"], env=env, check=True,
                       capture_output=True, timeout=120)
        yield env, address
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def sweep(env: dict, address: str, storage: Path, name: str, *flags: str) -> list[dict]:
    command = [sys.executable, "-m", "tuner.sweep", "--address", address, "--storage", str(storage),
               "--name", name, *TINY, *flags]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return pq.read_table(storage / name / "trials.parquet").to_pylist()


def test_sweep_on_a_token_authenticated_two_node_cluster(token_cluster, tmp_path):
    env, address = token_cluster
    without_token = {key: value for key, value in env.items() if key != "RAY_AUTH_TOKEN"}
    denied = subprocess.run([sys.executable, "-c", NODES_SCRIPT.format(address=address)], env=without_token,
                            capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0  # token authentication is really on
    nodes = subprocess.run([sys.executable, "-c", NODES_SCRIPT.format(address=address)], env=env,
                           capture_output=True, text=True, timeout=120, check=True)
    gpus_by_node = dict(json.loads(nodes.stdout.strip().splitlines()[-1]))
    assert sorted(gpus_by_node.values()) == [0, 2]

    cpu_rows = sweep(env, address, tmp_path, "cpu", "--cpus-per-trial", "1")
    assert len(cpu_rows) == 7 and {row["node_id"] for row in cpu_rows} == set(gpus_by_node)

    gpu_rows = sweep(env, address, tmp_path, "gpu", "--cpus-per-trial", "0.5", "--gpus-per-trial", "0.5")
    assert len(gpu_rows) == 7
    assert all(gpus_by_node[row["node_id"]] > 0 and row["gpu_ids"] for row in gpu_rows)
