"""`--address` of an existing Ray cluster, checked before `ray.init`: against an address where nothing listens,
Ray retries the GCS connection for minutes; a user's typo must cost one line and a few seconds."""
import socket

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
