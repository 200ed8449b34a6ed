"""`ray up cluster/onprem.yaml` for real, the way a site without internet runs it: the head is this machine,
reached over SSH; the config installs with pip and the package index configured here, keeps the existing venv's
Ray and torch, and goes on without the ImageNet weights; a tiny sweep then runs its trials on the cluster
(`ray exec`, `--address auto`) and `ray down` stops it.

Isolation: `ray stop` (run by the config before `ray start`, and by `ray down`) kills every Ray process it can see,
so the head lives in a private PID namespace with its own /proc: it sees and stops this test's processes only, never
the local Ray clusters of other tests. Its SSH server is the test's own `sshd -i` (private config, host key and
authorized key), started per connection inside the namespace through Ray's `ssh_proxy_command`: it listens on no
port and leaves the system's sshd and ~/.ssh alone. It gives the sessions a temporary HOME (Ray syncs the project,
the token and its bootstrap files to ~) and RAY_TMPDIR (Ray's session files, including the ray_current_cluster file
that `--address auto` reads). Namespaces and sshd need root."""
import getpass
import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from tests.test_sweep import TINY

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
SSHD = "/usr/sbin/sshd"
PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # compiled into Debian's sshd; its service creates it at start
MISSING = [tool for tool in (SSHD, "rsync") if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.slow,  # about 2 minutes: pip installs the missing ray[default] extras, then three tiny trials
    pytest.mark.skipif(bool(MISSING), reason=f"no {' or '.join(MISSING)} here: `ray up` reaches the head over SSH "
                       "and syncs with rsync (`make sshd` installs Debian's openssh-server and rsync)"),
]


@dataclass
class Site:
    """The on-prem site simulated on this machine: everything under `root`, removed at the end."""
    root: Path
    namespace_init: int  # host PID of the private PID namespace's init
    cluster_name: str

    @property
    def home(self) -> Path:
        return self.root / "home"  # the head's home: where `ray up` syncs to and the config sets up

    @property
    def head_tmp(self) -> Path:
        return self.root / "head-tmp"  # the head's RAY_TMPDIR

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def shared(self) -> Path:
        return self.root / "shared"  # the shared file system: the head sees this machine's /tmp


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


@pytest.fixture
def site_root():
    # Short, not pytest's tmp_path: Ray's Unix sockets live under RAY_TMPDIR and must stay under 108 characters.
    root = Path(tempfile.mkdtemp(prefix="rt-onprem-"))
    yield root
    shutil.rmtree(root)


@pytest.fixture
def privilege_separation_dir():
    created = not PRIVILEGE_SEPARATION_DIR.exists()
    PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)
    yield
    if created:
        PRIVILEGE_SEPARATION_DIR.rmdir()


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@pytest.fixture
def cluster_name():
    """A name of its own. Ray's SSH connection sharing keeps its sockets in /tmp/ray_ssh_<user>/<cluster> (10 hex
    digits of their SHA-256 each, Ray's command_runner): removed once its ssh processes are gone."""
    name = f"renotune-onprem-test-{secrets.token_hex(4)}"
    user_dir = Path("/tmp") / f"ray_ssh_{short_hash(getpass.getuser())}"
    created = [path for path in (user_dir, user_dir / short_hash(name)) if not path.exists()]
    yield name
    for path in reversed(created):
        wait_until_unused(path)
        shutil.rmtree(path, ignore_errors=True)  # absent when the test failed before its first ssh


def wait_until_unused(control_dir: Path) -> None:
    """Ray's ssh master processes outlive its commands by up to 10 s (ControlPersist), or until their connection
    ends with the namespace."""
    deadline = time.monotonic() + 30
    while any(str(control_dir) in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])):
        assert time.monotonic() < deadline, f"ssh processes on {control_dir} did not exit"
        time.sleep(0.2)


@pytest.fixture
def site(cluster_name, site_root, privilege_separation_dir):
    """A PID namespace with its own /proc; its init (a Python loop) reaps the processes Ray leaves behind and exits
    on SIGTERM, and everything in the namespace dies with it."""
    reap = ("import os, signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit())\nwhile True:\n"
            "    try: os.wait()\n    except ChildProcessError: time.sleep(0.2)")
    keeper = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
                               sys.executable, "-c", reap])
    init = None
    try:
        init = namespace_init(keeper)
        yield Site(site_root, init, cluster_name)
    finally:
        if init:
            os.kill(init, signal.SIGTERM)
        else:
            keeper.kill()
        keeper.wait(timeout=30)  # unshare exits once it has reaped the init


def namespace_init(keeper: subprocess.Popen) -> int:
    """The PID of unshare's child, the namespace's init."""
    for _ in range(100):
        assert keeper.poll() is None, "unshare failed: the test needs root for a PID and a mount namespace"
        children = psutil.Process(keeper.pid).children()
        if children and children[0].cmdline()[:1] == [sys.executable]:
            return children[0].pid
        time.sleep(0.1)
    raise TimeoutError("the namespace's init did not start")


def site_packages(venv: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))


def venv_over_the_project_venv(path: Path) -> None:
    """The site's existing venv: it sees this checkout's .venv through a .pth line (the same Ray, torch and
    torchvision) but installs into itself, so the config's editable install of the synced copy leaves the shared
    .venv pointing at this checkout."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (site_packages(path) / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # Its own `ray` command, as in any venv with Ray installed: the .venv's, run by this venv's python.
    ray = path / "bin" / "ray"
    ray.write_text(f"#!{path / 'bin' / 'python'}\n" + Path(RAY).read_text().split("\n", 1)[1])
    ray.chmod(0o755)


def ssh_access(site: Site) -> dict:
    """The `auth` section: a fresh key authorized by a private sshd, run per connection inside the namespace."""
    key = site.root / "id_ed25519"
    for path in key, site.root / "host_key":
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    config = site.root / "sshd_config"
    config.write_text("\n".join([
        f"HostKey {site.root / 'host_key'}",
        f"AuthorizedKeysFile {key}.pub",
        "StrictModes no",  # the files live under /tmp, which everyone can write
        "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "LogLevel ERROR",
        # The head's own home and temporary files, the site's existing venv, no usage reports from Ray.
        f"SetEnv HOME={site.home} RAY_TMPDIR={site.head_tmp} RENOTUNE_VENV={site.venv} "
        "RAY_USAGE_STATS_ENABLED=0",
    ]) + "\n")
    return {"ssh_user": getpass.getuser(), "ssh_private_key": str(key),
            "ssh_proxy_command": f"nsenter --target {site.namespace_init} --pid --mount {SSHD} -i -f {config}"}


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} not once in {text!r}"
    return text.replace(old, new)


def config_for_this_machine(site: Site) -> Path:
    """cluster/onprem.yaml with the head at 127.0.0.1, no workers, this test's SSH, token and ports."""
    config = yaml.safe_load((REPO / "cluster" / "onprem.yaml").read_text())
    config["cluster_name"] = site.cluster_name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = ssh_access(site)
    token = site.root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    assert "~/.ray/auth_token" in config["file_mounts"], "the token's mount moved: ship this test's token instead"
    config["file_mounts"]["~/.ray/auth_token"] = str(token)
    # Ports of its own: the default ones may belong to another Ray on this machine.
    gcs, object_manager, dashboard, client_server, dashboard_agent = free_ports(5)
    start = config["head_start_ray_commands"][-1]
    start = replace_once(start, "--port=6379", f"--port={gcs}")
    start = replace_once(start, "--object-manager-port=8076", f"--object-manager-port={object_manager}")
    config["head_start_ray_commands"][-1] = (f"{start} --dashboard-port={dashboard} --ray-client-server-port="
                                             f"{client_server} --dashboard-agent-listen-port={dashboard_agent}")
    path = site.root / "onprem.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def ray_cli(site: Site, *args: str, timeout: int) -> str:
    """A `ray` command from the repository root, as the README runs them; the launcher's cluster state and config
    cache in the site (TMPDIR)."""
    launcher_tmp = site.root / "launcher-tmp"
    launcher_tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(launcher_tmp), "RAY_TMPDIR": str(launcher_tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run([RAY, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"ray {args[0]}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def namespace_commands(site: Site) -> list[str]:
    """The command lines of the processes in the namespace, its init aside."""
    namespace = os.readlink(f"/proc/{site.namespace_init}/ns/pid")
    commands = []
    for process in psutil.process_iter():
        try:
            if process.pid != site.namespace_init and os.readlink(f"/proc/{process.pid}/ns/pid") == namespace:
                commands.append(" ".join(process.cmdline()))
        except (OSError, psutil.Error):
            pass  # gone meanwhile
    return commands


def test_ray_up_sets_up_the_head_offline_and_runs_a_sweep_there(site):
    venv_over_the_project_venv(site.venv)
    config = config_for_this_machine(site)

    setup = ray_cli(site, "up", "-y", str(config), timeout=900)
    weights_fetched = any((site.home / ".cache" / "torch").rglob("*.pth"))
    assert weights_fetched or "warning: ImageNet weights not fetched" in setup
    assert not list(site_packages(site.venv).glob("torch-*")), "the existing venv's torch was installed again"

    sweep = shlex.join(["python", "-m", "tuner.sweep", "--address", "auto", "--storage", str(site.shared),
                        "--name", "onprem", *TINY, "--space", "lambda_feat_quick", "--method", "delta",
                        "--iters", "4", "--no-attack"])
    ray_cli(site, "exec", str(config), sweep, timeout=600)
    run_dir = site.shared / "onprem"
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert len(trials) == 3 and {trial["status"] for trial in trials} == {"TERMINATED"}
    head_raylets = {node for command in namespace_commands(site) for node in re.findall(r"--node_id=(\w+)", command)}
    assert {trial["node_id"] for trial in trials} == head_raylets, "the trials ran elsewhere than on the head"

    ray_cli(site, "down", "-y", str(config), timeout=300)
    left = [command for command in namespace_commands(site) if "ray" in command]
    assert left == [], f"`ray down` left Ray processes on the head: {left}"
