"""`--address` of an existing Ray cluster, checked before `ray.init`: against an address where nothing listens,
Ray retries the GCS connection for minutes, and against a cluster that wants an auth token this process lacks,
for 20 s with a log line a second; a user's typo or missing token must cost one line and a few seconds."""
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from trainables.errors import UserError

REACH_TIMEOUT_S = 5.0


def check_reachable(address: str) -> None:
    """One line when nothing accepts a connection at a host:port `--address` ('auto' and ray:// client addresses
    are resolved by Ray itself)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not host:port, 'auto' or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as error:
        raise UserError(f"--address {address}: no Ray cluster answers there ({error.strerror or error}); start one "
                        "with `ray start --head` or correct the address") from None
    check_authenticated(address)


def check_authenticated(address: str) -> None:
    """One line when the cluster refuses this process's auth token (none, or another cluster's). Ray's GCS
    client answers at once where `ray.init` retries; its C++ core also logs the refusal on fd 2, hidden here."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    try:
        with _stderr_hidden():
            GcsClient(address=address)
    except AuthenticationError:
        mode = os.environ.get("RAY_AUTH_MODE", "disabled")
        raise UserError(f"--address {address}: the cluster refused this machine's Ray auth token (RAY_AUTH_MODE is "
                        f"{mode!r}): export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=<the cluster's token file>, "
                        "see cluster/README.md") from None


@contextmanager
def _stderr_hidden() -> Iterator[None]:
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
