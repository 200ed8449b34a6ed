"""`--address` where no Ray cluster listens, or of a cluster that refuses this machine's auth token: one error
line within seconds, nothing written (Ray itself retries for minutes, or for 20 s with a log line a second)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from trainables.errors import UserError
from tuner.cluster_address import check_reachable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_address_without_a_listener_is_one_error():
    with pytest.raises(UserError, match="no Ray cluster answers there"):
        check_reachable(f"127.0.0.1:{free_port()}")
    for malformed in ("127.0.0.1", "host:port", ":6379"):
        with pytest.raises(UserError, match="is not host:port"):
            check_reachable(malformed)


@pytest.mark.slow  # two subprocesses importing torch and Ray
@pytest.mark.parametrize("command", ["tuner.sweep", "tuner.train"])
def test_the_commands_fail_in_one_line_within_30_seconds(tmp_path, command):
    address = f"127.0.0.1:{free_port()}"
    extra = ["--space", "lambda_feat_quick", "--storage", str(tmp_path), "--name", "nowhere"] \
        if command == "tuner.sweep" else ["--storage", str(tmp_path)]
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", command, "--address", address, "--iters", "4", *extra],
                         capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 30
    assert run.returncode == 2 and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and address in errors[0]
    assert not (tmp_path / "nowhere").exists()


def run_command(command: str, address: str, storage, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    extra = ["--space", "lambda_feat_quick", "--storage", str(storage), "--name", "nowhere"] \
        if command == "tuner.sweep" else ["--storage", str(storage)]
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", command, "--address", address, "--iters", "4", *extra],
                         capture_output=True, text=True, timeout=120, env=env)
    return run, time.monotonic() - started


@pytest.fixture
def token_cluster(tmp_path):
    """A one-node Ray cluster started with token authentication (`ray start --head --block`: stopping it stops
    exactly the processes it started, no other Ray on the machine); yields (address, its token file)."""
    token = tmp_path / "auth_token"
    token.write_text(os.urandom(32).hex())
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                            env=os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                check_reachable(f"127.0.0.1:{port}")
            except UserError as refusal:  # its GCS is up once it refuses a token-less client
                if "refused" in str(refusal):
                    break
            time.sleep(0.5)
        else:
            raise TimeoutError("the token-auth Ray head did not come up in 60 s")
        yield f"127.0.0.1:{port}", token
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow  # a Ray cluster and four subprocesses
def test_a_cluster_that_wants_an_auth_token_is_one_line_without_it_and_passes_with_it(tmp_path, token_cluster):
    address, token = token_cluster
    without_token = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
    wrong = tmp_path / "another_clusters_token"
    wrong.write_text(os.urandom(32).hex())
    wrong_token = without_token | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)}
    for command, env in [("tuner.sweep", without_token), ("tuner.train", without_token), ("tuner.sweep", wrong_token)]:
        run, seconds = run_command(command, address, tmp_path, env)
        assert seconds < 30 and run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert run.stderr.startswith(f"error: --address {address}: the cluster refused") \
            and "RAY_AUTH_TOKEN_PATH" in run.stderr
        assert not (tmp_path / "nowhere").exists()
    with_token = without_token | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    passes = subprocess.run([sys.executable, "-c", "import sys; from tuner.cluster_address import check_reachable; "
                             "check_reachable(sys.argv[1])", address],
                            capture_output=True, text=True, timeout=60, env=with_token)
    assert passes.returncode == 0 and passes.stderr == "", passes.stderr
