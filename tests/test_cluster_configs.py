"""The `ray up` configs in cluster/: valid for Ray's own schema, versions matching the project, explicit
resources, dashboard on loopback, token authentication on every node, nothing fetched from the internet on-prem.
Offline: no cloud SDK or credentials (prepare_config only merges the provider's defaults.yaml shipped with Ray).
tests/test_onprem_ray_up.py runs `ray up` of the on-prem config for real."""
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import ray
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
CONFIGS = sorted(CLUSTER.glob("*.yaml"))
PINNED = ("ray", "torch", "torchvision")  # installed explicitly on every node, checked against pyproject
COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                 "head_start_ray_commands", "worker_start_ray_commands")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def project_requirements() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, pyproject()["project"]["dependencies"])}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(params=CONFIGS, ids=lambda p: p.name)
def path(request) -> Path:
    return request.param


@pytest.fixture
def prepared(path) -> dict:
    """The config as `ray up` sees it: defaults merged, setup commands merged per role."""
    return prepare_config(load(path))


def is_local(config: dict) -> bool:
    return config["provider"]["type"] == "local"


def setup_commands_per_role(config: dict) -> dict[str, list[str]]:
    """Setup commands each kind of node runs (prepared config: setup_commands already merged in)."""
    roles = {"head": config["head_setup_commands"]}
    for name, node_type in config["available_node_types"].items():
        if name != config["head_node_type"]:
            # A node type's own worker_setup_commands replace the global ones.
            roles[name] = node_type.get("worker_setup_commands", config["worker_setup_commands"])
    if is_local(config):
        roles["worker"] = config["worker_setup_commands"]
    return roles


def requirements_in(commands: list[str]) -> dict[str, Requirement]:
    found = {}
    for command in commands:
        for token in shlex.split(command):
            try:
                requirement = Requirement(token)
            except InvalidRequirement:
                continue
            name = canonicalize_name(requirement.name)
            if name in PINNED:
                assert name not in found, f"{name} installed twice: {found[name]} and {requirement}"
                found[name] = requirement
    return found


def ray_start(commands: list[str]) -> str:
    starts = [c for c in commands if re.search(r"\bray start\b", c)]
    assert len(starts) == 1, f"expected one `ray start` command, got {starts}"
    return starts[0]


def flag(command: str, name: str) -> str | None:
    match = re.search(rf"--{name}[= ]([^\s;]+)", command)
    return match.group(1) if match else None


def normalise_remote(path: str) -> str:
    path = path.strip("\"'")
    return re.sub(r"^(\$HOME|\$\{HOME\})", "~", path)


def test_the_configs_exist():
    assert {"cluster.yaml", "onprem.yaml"} <= {p.name for p in CONFIGS}


def test_validates_with_rays_schema(path):
    validate_config(prepare_config(load(path)))


def test_ray_is_pinned_to_the_installed_version_on_every_node(prepared):
    project_ray = project_requirements()["ray"]
    for role, commands in setup_commands_per_role(prepared).items():
        cluster_ray = requirements_in(commands).get("ray")
        assert cluster_ray is not None, f"{role}: no ray install in its setup commands"
        pins = [s for s in cluster_ray.specifier if s.operator == "=="]
        assert len(pins) == 1, f"{role}: ray must be pinned exactly (head and workers must match): {cluster_ray}"
        installed = ray.__version__
        assert pins[0].version == installed, f"{role}: cluster ray {pins[0].version} != installed {installed}"
        assert Version(installed) in project_ray.specifier, f"ray {installed} outside pyproject {project_ray}"
        assert project_ray.extras <= cluster_ray.extras, \
            f"{role}: ray extras {cluster_ray.extras} lack {project_ray.extras}"
        assert "default" in cluster_ray.extras, f"{role}: the cluster launcher and dashboard need ray[default]"


@pytest.mark.parametrize("package", ["torch", "torchvision"])
def test_torch_versions_agree_with_pyproject(prepared, package):
    project = project_requirements()[package].specifier
    for role, commands in setup_commands_per_role(prepared).items():
        cluster = requirements_in(commands).get(package)
        assert cluster is not None, f"{role}: no {package} install in its setup commands"
        pins = [s for s in cluster.specifier if s.operator == "=="]
        if pins:
            assert len(cluster.specifier) == 1, f"{role}: {cluster}"
            assert Version(pins[0].version) in project, f"{role}: {cluster} outside pyproject's {package}{project}"
        else:
            assert cluster.specifier == project, f"{role}: {cluster} differs from pyproject's {package}{project}"


def test_the_project_is_synced_and_installed_from_the_mount(prepared):
    mounts = {normalise_remote(remote): local for remote, local in prepared["file_mounts"].items()}
    # `ray up` resolves "." against where it runs: the repository root (the README says so).
    project = [remote for remote, local in mounts.items() if (REPO / Path(local).expanduser()).resolve() == REPO]
    assert len(project) == 1, f"file_mounts must sync the repository (\".\" from its root): {mounts}"
    for role, commands in setup_commands_per_role(prepared).items():
        editable = [t for c in commands for t in re.findall(r"(?<!\S)-e\s+(\S+)", c)]
        assert [normalise_remote(e) for e in editable] == project, f"{role}: install the synced project: {editable}"
    assert ".gitignore" in prepared["rsync_filter"], "the sync must skip git-ignored files (.venv, runs/)"


def test_python_version_satisfies_requires_python(prepared):
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    commands = [c for cs in setup_commands_per_role(prepared).values() for c in cs]
    versions = {v for c in commands for v in re.findall(r"(?:--python[= ]|\bpython)(\d+\.\d+)\b", c)}
    assert versions, "the node's Python version is set explicitly (uv venv --python X.Y, pythonX.Y -m venv)"
    for version in versions:
        assert Version(version) in requires, f"python {version} does not satisfy requires-python {requires}"


def test_every_node_type_declares_its_resources(path):
    raw = load(path)
    if is_local(raw):
        # The local provider has one implicit node type; resources go on the `ray start` lines.
        head = ray_start(raw["head_start_ray_commands"])
        worker = ray_start(raw["worker_start_ray_commands"])
        for role, command in ("head", head), ("worker", worker):
            for name in "num-cpus", "num-gpus":
                assert flag(command, name) is not None, f"{path.name} {role}: `ray start` lacks --{name}"
        assert float(flag(worker, "num-gpus")) > 0, f"{path.name}: workers declare no GPUs"
        return
    node_types = raw["available_node_types"]
    for name, node_type in node_types.items():
        resources = node_type.get("resources")
        assert resources and {"CPU", "GPU"} <= set(resources), f"{path.name} {name}: resources {resources}"
        if name != raw["head_node_type"]:
            assert resources["GPU"] > 0, f"{path.name} {name}: a worker type without GPUs"
            assert resources["CPU"] > 0, f"{path.name} {name}: a worker type without CPUs"
    assert any(name != raw["head_node_type"] for name in node_types), f"{path.name}: no worker types"


def test_dashboard_binds_to_loopback(prepared):
    head = ray_start(prepared["head_start_ray_commands"])
    assert "--head" in head
    assert flag(head, "dashboard-host") == "127.0.0.1"
    every = prepared["head_start_ray_commands"] + prepared["worker_start_ray_commands"]
    hosts = {h for c in every for h in re.findall(r"--dashboard-host[= ](\S+)", c)}
    assert hosts == {"127.0.0.1"}, hosts


def test_token_auth_on_every_node(path, prepared):
    mounts = {normalise_remote(remote): local for remote, local in prepared["file_mounts"].items()}
    for role in "head_start_ray_commands", "worker_start_ray_commands":
        command = ray_start(prepared[role])
        before_start = command[: re.search(r"\bray start\b", command).start()]
        assert re.search(r"\bRAY_AUTH_MODE=token\b", before_start), f"{path.name} {role}: RAY_AUTH_MODE=token"
        token_path = re.search(r"\bRAY_AUTH_TOKEN_PATH=(\"[^\"]+\"|'[^']+'|[^\s;]+)", before_start)
        remote = normalise_remote(token_path.group(1)) if token_path else "~/.ray/auth_token"
        assert remote in mounts, f"{path.name} {role}: the token file {remote} is not shipped in file_mounts"
        local = Path(mounts[remote]).expanduser()
        assert local.is_absolute() and REPO not in local.resolve().parents, (
            f"{path.name}: the token comes from the user's machine, never from the repository ({local})")


def test_onprem_fetches_nothing_but_packages_from_the_nodes_index():
    """Behind a firewall a node reaches at most its package mirror, through pip's own configuration: no installer
    downloaded and piped into a shell, no uv (it reads neither /etc/pip.conf nor PIP_INDEX_URL)."""
    config = load(CLUSTER / "onprem.yaml")
    for name in COMMAND_LISTS:
        for command in config[name]:
            assert not re.search(r"\b(curl|wget)\b|\|\s*(ba)?sh\b|\buv\b", command), f"{name}: {command}"


def test_the_readme_covers_every_config():
    readme = (CLUSTER / "README.md").read_text()
    for config in CONFIGS:
        assert f"cluster/{config.name}" in readme, f"cluster/README.md does not mention {config.name}"
