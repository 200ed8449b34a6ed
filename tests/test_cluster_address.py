"""`--address` where no Ray cluster listens: one error line within seconds, nothing written (Ray itself retries
for minutes)."""
import socket
import subprocess
import sys
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


def test_a_listening_address_passes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")


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
