"""Drive real deploys of inventory/local.py onto this machine over real SSH, and read the result.

bin/test starts the harness (one dockerd, local images, sshd on 127.0.0.1:2222) and sets
MCPGATE_E2E=1. The deploy runs pyinfra exactly as a user does; variants of the inventory are
written next to the test's secrets store and differ from inventory/local.py by what a test changes.

Two components may be impossible to build on a machine: Authelia (from the Go module proxy) and
agentgateway (no build path here; MCPGATE_AGENTGATEWAY_IMAGE names a local build). Whether each can
run is decided once, by :func:`unavailable`; a test stack is then deployed without it
(``mcpgate_components``, as a user can), everything else still runs, and what needs it skips with
the reason, through :meth:`Deployer.need`, the ``authelia``/``gateway`` fixtures, or
:func:`skip_module_without` for a test module that is about that component alone.
MCPGATE_AUTHELIA_IMAGE names another Authelia image; one that does not exist (with the pinned tag,
e.g. mcpgate-local/authelia-absent:4.39.20) shows the suite as a machine that could not build it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets as pysecrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcpgate.container_specs import LABEL_STACK
from mcpgate.model import AUTHELIA_VERSION

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SSHD_DIR = Path(os.environ.get("MCPGATE_SSHD_DIR", "/run/mcpgate-sshd"))
LOCAL_IMAGES = {
    "redis": "mcpgate-local/redis:7.0.15",
    # Another build of it (one being tried before it replaces the shared tag, or an absent name to run as a
    # fresh machine does) with MCPGATE_AUTHELIA_IMAGE.
    "authelia": os.environ.get("MCPGATE_AUTHELIA_IMAGE") or f"mcpgate-local/authelia:{AUTHELIA_VERSION}",
    "ingress": "mcpgate-local/caddy:2.6.2",
}
PYTHON_BASE = "mcpgate-local/python:3.11-bookworm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Every name this test run gives the engine and the host is its own: nothing a real deploy or an
# earlier run left can be mistaken for it, and nothing of theirs is touched.
STACK_NAME = f"mcpgate-e2e-{pysecrets.token_hex(3)}"
BASE_DIR = f"/opt/{STACK_NAME}"


def random_network_pool() -> str:
    """A /22 of 10.64.0.0/10 for a test stack's networks, so that it never overlaps a real
    deploy's (172.31.252.0/22 by default) and hardly ever another test stack's."""
    return f"10.{64 + pysecrets.randbelow(64)}.{4 * pysecrets.randbelow(64)}.0/22"


NETWORK_POOL = random_network_pool()
VAULT_DIR = f"/var/lib/{STACK_NAME}-notes"
INGRESS_PORT = _free_port()
HOSTNAME = "mcp-gateway.home.test"
HOST = "127.0.0.1"  # the inventory's host name with MCPGATE_SSH_PORT set


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def image_exists(ref: str) -> bool:
    try:
        return docker("image", "inspect", ref, check=False).returncode == 0
    except FileNotFoundError:  # no docker client at all
        return False


@functools.cache
def authelia_unavailable() -> str | None:
    """Why Authelia cannot run here, or None: its local image could not be built (bin/test records
    why in the file MCPGATE_AUTHELIA_UNAVAILABLE_FILE names)."""
    image = LOCAL_IMAGES["authelia"]
    if image_exists(image):
        return None
    reason_file = os.environ.get("MCPGATE_AUTHELIA_UNAVAILABLE_FILE")
    recorded = Path(reason_file).read_text() if reason_file and Path(reason_file).is_file() else ""
    why = "; ".join(line.strip() for line in recorded.splitlines() if line.strip())
    return f"Authelia could not be built here, no local image {image} ({why or 'see bin/test'})"


@functools.cache
def gateway_unavailable() -> str | None:
    """Why agentgateway cannot run here, or None."""
    gateway = os.environ.get("MCPGATE_AGENTGATEWAY_IMAGE")
    if not gateway:
        return (
            "agentgateway could not be built here (no build path on this machine and no image can be pulled); "
            "set MCPGATE_AGENTGATEWAY_IMAGE to a local build"
        )
    if not image_exists(gateway):
        return f"agentgateway: MCPGATE_AGENTGATEWAY_IMAGE={gateway} is not a local image"
    return None


def unavailable() -> dict[str, str]:
    """The services that cannot run on this machine, each with why: the one decision every e2e test
    (and the deploys they make) goes by."""
    reasons = {"authelia": authelia_unavailable(), "agentgateway": gateway_unavailable()}
    return {service: why for service, why in reasons.items() if why}


def skip_module_without(*services: str) -> None:
    """At the top of a test module that is about these services alone (every test talks to them):
    the whole module skips, as one, with the reason, when one of them cannot run here."""
    module = Path(sys._getframe(1).f_globals.get("__file__", "this module")).name
    if docker_answers() is not None:
        pytest.skip(f"{module}, all of it: {docker_answers()}", allow_module_level=True)
    for service in services:
        why = unavailable().get(service)
        if why:
            pytest.skip(f"{module}, all of it (every test needs {service}): {why}", allow_module_level=True)


@functools.cache
def docker_answers() -> str | None:
    """Why no Docker engine can be used here, or None."""
    try:
        if docker("info", check=False).returncode == 0:
            return None
    except FileNotFoundError:
        return "no docker client installed"
    return "no Docker engine answers"


def missing_requirements() -> str | None:
    """Why no test stack can be deployed here, or None. Authelia and agentgateway are not
    requirements: a stack is deployed without them (see :func:`unavailable`)."""
    if os.environ.get("MCPGATE_E2E") != "1":
        return "the test harness is not up (run the suite with bin/test as root)"
    if docker_answers():
        return docker_answers()
    for ref in (LOCAL_IMAGES["redis"], LOCAL_IMAGES["ingress"], PYTHON_BASE):
        if not image_exists(ref):
            return f"local image {ref} is missing (tests/harness/build-images.sh)"
    return None


@dataclass
class RunResult:
    returncode: int
    output: str
    seconds: float
    changed_ops: list[str]
    errors: int

    @property
    def changes(self) -> int:
        return len(self.changed_ops)


_ROW = re.compile(
    r"^\s*(?P<name>.+?)\s+(?P<hosts>\d+|-)\s+(?P<success>\d+|-)\s+(?P<error>\d+|-)\s+(?P<nochange>\d+|-)\s*$"
)


def parse_results(output: str) -> tuple[list[str], int]:
    """Operations pyinfra's results table counts as changed, and the error count of its total."""
    changed, errors, in_table = [], 0, False
    for line in output.splitlines():
        clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if re.match(r"^\s*Operation\s+Hosts\s+Success\s+Error\s+No Change", clean):
            in_table = True
            continue
        if not in_table:
            continue
        m = _ROW.match(clean)
        if not m:
            continue
        if m["name"].strip() == "Grand total":
            errors = 0 if m["error"] == "-" else int(m["error"])
            break
        if m["success"] != "-":
            changed.append(m["name"].strip())
    return changed, errors


def local_deploy_env(
    *, secrets_dir: Path, name: str, base_dir: str, port: int, pool: str, vault: str, gateway_image: str | None
) -> dict[str, str]:
    """The environment that makes inventory/local.py a stack of the caller's own, deployed over the
    harness's SSH target with the harness's local images (see inventory/local.py)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MCPGATE_IMAGE_", "MCPGATE_LOCAL_"))}
    return {
        **inherited,
        "MCPGATE_SECRETS_DIR": str(secrets_dir),
        "MCPGATE_SSH_PORT": os.environ.get("MCPGATE_SSHD_PORT", "2222"),
        "MCPGATE_SSH_USER": "root",
        "MCPGATE_SSH_KEY": str(SSHD_DIR / "id_ed25519"),
        "MCPGATE_SSH_KNOWN_HOSTS": str(SSHD_DIR / "known_hosts"),
        "MCPGATE_IMAGE_REDIS": LOCAL_IMAGES["redis"],
        "MCPGATE_IMAGE_AUTHELIA": LOCAL_IMAGES["authelia"],
        "MCPGATE_IMAGE_INGRESS": LOCAL_IMAGES["ingress"],
        "MCPGATE_IMAGE_AGENTGATEWAY": gateway_image or "agentgateway-absent:none",
        "MCPGATE_PYTHON_BASE_IMAGE": PYTHON_BASE,
        "MCPGATE_LOCAL_NAME": name,
        "MCPGATE_LOCAL_BASE_DIR": base_dir,
        "MCPGATE_LOCAL_PORT": str(port),
        "MCPGATE_LOCAL_NETWORK_POOL": pool,
        "MCPGATE_LOCAL_VAULT": vault,
        "MCPGATE_LOCAL_HOSTNAME": HOSTNAME,
        "MCPGATE_DOCKER_INSTALL": "existing",
    }


# The services a test stack runs, in the deploy's order (tailscale is off in inventory/local.py).
SERVICES = ("docker", "redis", "authelia", "backends", "ingress", "agentgateway")


class Deployer:
    """Runs pyinfra against the SSH target with a given variant of inventory/local.py.

    A service that cannot run here (:func:`unavailable`) is left out of every deploy with
    ``mcpgate_components``, and out of the host checks; every other service is still deployed and
    checked."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.left_out = unavailable()
        self.gateway = "agentgateway" not in self.left_out
        self.components = ",".join(s for s in SERVICES if s not in self.left_out) if self.left_out else None
        self.secrets_dir = workdir / "secrets"
        self.env = local_deploy_env(
            secrets_dir=self.secrets_dir,
            name=STACK_NAME,
            base_dir=BASE_DIR,
            port=INGRESS_PORT,
            pool=NETWORK_POOL,
            vault=VAULT_DIR,
            gateway_image=os.environ.get("MCPGATE_AGENTGATEWAY_IMAGE"),
        )

    def has(self, service: str) -> bool:
        """Whether the test stack runs ``service`` (``"authelia"``, ``"agentgateway"``...)."""
        return service not in self.left_out

    def need(self, service: str, what: str = "") -> None:
        """Skip the calling test, from here on, when ``service`` was left out of the stack; ``what``
        says which part of the test that leaves unchecked (the parts before this call ran)."""
        if service in self.left_out:
            unchecked = f" ({what} not checked)" if what else ""
            pytest.skip(f"{service} left out of the test stack{unchecked}: {self.left_out[service]}")

    def inventory(self, edit: str | None = None) -> Path:
        """inventory/local.py itself, or a variant: ``edit`` is Python run on ``_stack`` (a dict)."""
        if edit is None:
            return PROJECT_ROOT / "inventory" / "local.py"
        path = self.workdir / "inventory_variant.py"
        path.write_text(
            "import runpy as _runpy\n"
            f"_base = _runpy.run_path({str(PROJECT_ROOT / 'inventory' / 'local.py')!r})\n"
            "local = _base['local']\n"
            "_stack = local[0][1]['mcpgate']\n" + edit + "\n"
        )
        return path

    def deploy(self, inventory: Path | None = None, data: dict[str, str] | None = None) -> RunResult:
        """``pyinfra -y <inventory> deploy.py``, with ``--data key=value`` for each of ``data``."""
        inv = inventory or self.inventory()
        data = {**({"mcpgate_components": self.components} if self.components else {}), **(data or {})}
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pyinfra", "-y", str(inv), "deploy.py"]
            + [arg for key, value in data.items() for arg in ("--data", f"{key}={value}")],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env=self.env,
            timeout=1800,
        )
        seconds = time.monotonic() - start
        output = proc.stdout + proc.stderr
        changed, errors = parse_results(output)
        return RunResult(proc.returncode, output, seconds, changed, errors)

    def mcpgate(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mcpgate", *args],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env=self.env,
            input=stdin,
        )

    def host_checks(self, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
        """tests/host against the SSH target, as a user would run them."""
        inv = inventory or self.inventory()
        return subprocess.run(
            [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/host",
                "--hosts=ssh://mcpgate-test", f"--ssh-config={SSHD_DIR / 'ssh_config'}",
                f"--inventory={inv}", f"--secrets={self.secrets_dir}",
                *([f"--components={self.components}"] if self.components else []),
            ],
            capture_output=True, text=True, cwd=PROJECT_ROOT, env=self.env, timeout=600,
        )  # fmt: skip

    def store_file(self, name: str) -> str:
        return (self.secrets_dir / HOST / name).read_text()


def name_of(service: str) -> str:
    """The test stack's container for a service: ``name_of("redis")``, ``name_of("backend-notes")``."""
    return f"{STACK_NAME}-{service}"


def containers() -> dict[str, dict[str, Any]]:
    """The test stack's containers (never another stack's), by name."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL_STACK}={STACK_NAME}").stdout.split()
    if not ids:
        return {}
    return {c["Name"].lstrip("/"): c for c in json.loads(docker("inspect", *ids).stdout)}


def started_at() -> dict[str, str]:
    return {name: c["State"]["StartedAt"] for name, c in containers().items()}


def teardown_stack() -> None:
    """Remove every container, volume and network of the test stack, and its folder on this machine."""
    for name in containers():
        docker("rm", "-fv", name, check=False)
    label = f"label={LABEL_STACK}={STACK_NAME}"
    for vol in docker("volume", "ls", "-q", "--filter", label).stdout.split():
        docker("volume", "rm", "-f", vol, check=False)
    for net in docker("network", "ls", "-q", "--filter", label).stdout.split():
        docker("network", "rm", net, check=False)
    shutil.rmtree(BASE_DIR, ignore_errors=True)
