"""How fast does mcpgate converge? A benchmark run by hand, not part of the test suite's pass/fail.

    .venv/bin/python bench/converge.py                    # every section, 3 runs each
    .venv/bin/python bench/converge.py --runs 1 --only floor,noop

It deploys inventory/local.py through the test harness's SSH host (tests/harness: one dockerd, local
images, sshd on 127.0.0.1:2222) under a stack name, base folder, network pool and ingress port of its
own, prints one table (each figure the median of --runs runs, with min and max, all measured in this
one invocation so that ratios between them mean something on a noisy machine), writes it as JSON to
bench/results/<UTC time>.json and bench/results/latest.json, and removes everything it created
(containers, volumes, networks, folders), whatever happens. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Run as a script (bench/converge.py): the project's packages (mcpgate, tests) are importable from its root.
sys.path.insert(0, str(PROJECT_ROOT))

from mcpgate.container_specs import GATEWAY_READINESS_PORT, LABEL_STACK  # noqa: E402
from mcpgate.layout import INGRESS  # noqa: E402
from mcpgate.model import Backend  # noqa: E402
from mcpgate.render import build_files, build_image_tag  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    LOCAL_IMAGES,
    PYTHON_BASE,
    SSHD_DIR,
    local_deploy_env,
    parse_results,
    random_network_pool,
)

LOCAL_INVENTORY = PROJECT_ROOT / "inventory" / "local.py"
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
HOSTNAME = "mcp-gateway.home.test"
INVENTORY_HOST = "127.0.0.1"  # the inventory's host name with MCPGATE_SSH_PORT set (the store's folder)
DEFAULT_GATEWAY_IMAGE = "mcpgate-local/agentgateway:v1.4.1"
SECTIONS = ("floor", "cold", "noop", "change", "memory", "requests", "scale", "cli")
DEPLOY_TIMEOUT = 1800
# The venv's own pyinfra command (bench runs with the venv's python).
PYINFRA = Path(sys.executable).with_name("pyinfra")

# The one-scope change: "read" moves from notes:read to notes:write, and back on the next run.
SCOPE_CHANGE = "_stack['backends'][0]['tools'] = {'notes:read': ['search'], 'notes:write': ['read', 'write', 'delete']}"
# agentgateway's /mcp bucket (20/s, burst 200 by default) would answer a load test with 429s.
WIDE_BUCKET = "_stack['rate_limits'] = {'mcp_requests_per_second': 100000, 'mcp_burst': 1000000}"


# --- measuring one process ---------------------------------------------------------------------


@dataclass
class Proc:
    """A finished process: exit code, output, wall seconds, CPU seconds (user + system)."""

    returncode: int
    output: str
    wall: float
    cpu: float


def run_timed(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path = PROJECT_ROOT) -> Proc:
    """Run ``cmd`` in the project root; its wall time, and its CPU time from wait4 (its own and
    that of every descendant it waited for, e.g. ssh), not this process's."""
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Proc(proc.returncode, text, wall, usage.ru_utime + usage.ru_stime)


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The docker CLI; raises with its stderr when ``check`` and it fails."""
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {r.stderr.strip()[-500:]}")
    return r


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- results ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure measured once per run (``values``), its CPU time if any."""

    section: str
    key: str
    label: str
    unit: str  # "s" or "ms"
    values: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    ratio: float | None = None  # median over the floor's median
    goal: str = ""
    verdict: str = ""  # PASS, MISS, or "" without a goal
    note: str = ""
    load: str = ""  # the 1-minute load average when its section started -> ended

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {"median": self.median, "min": min(self.values, default=None), "max": max(self.values, default=None)}
        data["cpu_median"] = statistics.median(self.cpu) if self.cpu else None
        return data


@dataclass
class DeployRun:
    """One pyinfra run: the process, and the operations its results table counts as changed."""

    proc: Proc
    changed_ops: list[str]
    errors: int

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0 and self.errors == 0

    def tail(self) -> str:
        return self.proc.output[-3000:]


class BenchError(RuntimeError):
    """A step a section needs failed; the section stops and says why."""


# --- the bench's own stack ---------------------------------------------------------------------------


class Bench:
    """A stack of the bench's own (name, folders, network pool, ingress port) and how to deploy it."""

    def __init__(
        self, workdir: Path, runs: int, sizes: list[int], log_dir: Path | None = None, profile_dir: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.runs = runs
        self.sizes = sizes
        self.log_dir = log_dir  # every pyinfra run's output, numbered, when given
        self.profile_dir = profile_dir  # every pyinfra run under cProfile, its stats numbered, when given
        self.deploys = 0
        # Every name is this run's own: nothing a real deploy or a test stack made is seen or touched.
        self.name = f"mcpgate-bench-{secrets.token_hex(3)}"
        self.base_dir = f"/opt/{self.name}"
        self.vault = Path(f"/var/lib/{self.name}-notes")
        self.stub_root = Path(f"/var/lib/{self.name}-stubs")
        self.port = free_port()
        self.pool = random_network_pool()
        self.secrets_dir = workdir / "secrets"
        self.gateway_image, self.gateway_missing = self._gateway_image()
        self.noop_samples: list[Proc] = []  # section 2's, reused as scale's 1-backend point
        self.notes: list[str] = []
        self.failed: list[str] = []  # sections that stopped
        self.env = self._env()

    @staticmethod
    def _gateway_image() -> tuple[str | None, str]:
        """The agentgateway image to deploy, or None and why not."""
        ref = os.environ.get("MCPGATE_AGENTGATEWAY_IMAGE") or DEFAULT_GATEWAY_IMAGE
        if image_exists(ref):
            return ref, ""
        return None, f"no local agentgateway image {ref} (set MCPGATE_AGENTGATEWAY_IMAGE to one)"

    def _env(self) -> dict[str, str]:
        """What tests/e2e/harness.py's Deployer sets, with this bench's names; Python keeps its
        bytecode as a user's shell lets it (an inherited PYTHONDONTWRITEBYTECODE would have every
        run compile mcpgate, the tasks and deploy.py from source again: ~0.1 s a run)."""
        return {
            k: v
            for k, v in local_deploy_env(
                secrets_dir=self.secrets_dir,
                name=self.name,
                base_dir=self.base_dir,
                port=self.port,
                pool=self.pool,
                vault=str(self.vault),
                gateway_image=self.gateway_image,
            ).items()
            if k != "PYTHONDONTWRITEBYTECODE"
        }

    @property
    def components_args(self) -> list[str]:
        """Without an agentgateway image every other service is still deployed (as the e2e tests do)."""
        if self.gateway_image:
            return []
        return ["--data", "mcpgate_components=docker,redis,authelia,backends,ingress"]

    # inventories

    def variant(self, label: str, edit: str) -> Path:
        """inventory/local.py with ``edit`` (Python on ``_stack``) applied, as harness.Deployer writes it."""
        path = self.workdir / f"inventory_{label}.py"
        path.write_text(
            "import runpy as _runpy\n"
            f"_base = _runpy.run_path({str(LOCAL_INVENTORY)!r})\n"
            "local = _base['local']\n"
            "_stack = local[0][1]['mcpgate']\n" + edit + "\n"
        )
        return path

    def scaled(self, size: int) -> Path:
        """The stack with ``size`` container backends: notes and ``size - 1`` small stand-ins (a
        Python http.server each, with a host folder, a network and a tool of its own)."""
        if size <= 1:
            return LOCAL_INVENTORY
        stubs = [
            {
                "name": f"stub-{i:02d}",
                "image": PYTHON_BASE,
                "command": ["python3", "-m", "http.server", "--directory", "/data", "8080"],
                "port": 8080,
                "user": "10100:10100",
                "limits": {"memory": "64m", "cpus": 0.25, "pids": 32},
                "volumes": [{"source": str(self.stub_root / f"stub-{i:02d}"), "target": "/data"}],
                "tools": {"notes:read": ["ping"]},
            }
            for i in range(1, size)
        ]
        return self.variant(f"scale{size}", f"_stack['backends'] += {stubs!r}")

    # running things

    def deploy(
        self, inventory: Path = LOCAL_INVENTORY, deploy_file: str = "deploy.py", checkout: Path = PROJECT_ROOT
    ) -> DeployRun:
        """One pyinfra run, exactly as a user runs it, timed; from another ``checkout`` (``--baseline``)
        its deploy.py, tasks and mcpgate, with this venv."""
        # The venv's `pyinfra` script, as the README runs it (`python -m pyinfra` would add runpy's frames
        # to the stack pyinfra inspects for every operation).
        cmd = [str(PYINFRA), "-y", str(inventory), deploy_file, *self.components_args]
        if self.profile_dir:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            stats = self.profile_dir / f"{self.deploys + 1:03d}-{inventory.stem}-{Path(deploy_file).stem}.prof"
            cmd[0:0] = [sys.executable, "-m", "cProfile", "-o", str(stats)]
        env = self.env if checkout == PROJECT_ROOT else self.env | {"PYTHONPATH": str(checkout)}
        proc = run_timed(cmd, env, DEPLOY_TIMEOUT, cwd=checkout)
        self.deploys += 1
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            name = f"{self.deploys:03d}-{inventory.stem}-{Path(deploy_file).stem}-{proc.wall:.1f}s.log"
            (self.log_dir / name).write_text(proc.output)
        changed, errors = parse_results(proc.output)
        return DeployRun(proc, changed, errors)

    def converge(self, inventory: Path = LOCAL_INVENTORY) -> DeployRun:
        """Deploy (untimed for the table) and insist that it worked."""
        run = self.deploy(inventory)
        if not run.ok:
            raise BenchError(f"deploy of {inventory.name} failed (exit {run.proc.returncode}):\n{run.tail()}")
        return run

    def mcpgate(self, *args: str, checkout: Path = PROJECT_ROOT, env: dict[str, str] | None = None) -> Proc:
        """``python -m mcpgate`` of ``checkout`` (its folder first on sys.path), with this venv."""
        return run_timed([sys.executable, "-m", "mcpgate", *args], self.env | (env or {}), 300, cwd=checkout)

    def store_file(self, name: str) -> str:
        return (self.secrets_dir / INVENTORY_HOST / name).read_text()

    def container(self, service: str) -> str:
        return f"{self.name}-{service}"

    def started_at(self) -> dict[str, str]:
        """When each of the stack's containers last started, by name (this stack's only)."""
        ids = docker("ps", "-aq", "--filter", f"label={LABEL_STACK}={self.name}").stdout.split()
        if not ids:
            return {}
        return {c["Name"].lstrip("/"): c["State"]["StartedAt"] for c in json.loads(docker("inspect", *ids).stdout)}

    def settle(self, timeout: float = 60) -> None:
        """Until no container of the stack is in its healthcheck's start (health "starting"), untimed.
        Right after a (re)start a no-op runs the container's own check itself (Docker 20.10 has no
        start interval): a run then pays ~0.3 s a container that a later run does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = docker("ps", "-q", "--filter", f"label={LABEL_STACK}={self.name}").stdout.split()
            states = [c["State"] for c in json.loads(docker("inspect", *ids).stdout)] if ids else []
            if all((st.get("Health") or {}).get("Status") != "starting" for st in states):
                return
            time.sleep(0.5)
        self.notes.append(f"a container's health was still 'starting' {timeout:.0f} s after a deploy")

    # setting up and tearing down

    def prepare(self) -> None:
        """The vault's notes (as the e2e fixture seeds them) and a full secrets store, so that no
        timed run pays for generating secrets (the 3072-bit signing key) and every run is alike."""
        self.vault.mkdir(parents=True)
        (self.vault / "projects").mkdir()
        (self.vault / "projects" / "gateway.md").write_text("# Gateway\n\nThe MCP gateway runs on the home server.\n")
        (self.vault / "shopping.md").write_text("- milk\n- coffee beans\n")
        for p in [self.vault, *self.vault.rglob("*")]:
            shutil.chown(p, 10001, 10001)
        rendered = self.mcpgate("render", str(LOCAL_INVENTORY), "--out", str(self.workdir / "rendered"))
        if rendered.returncode != 0:
            raise BenchError(f"mcpgate render failed: {rendered.output[-2000:]}")

    def remove_stack(self) -> None:
        """This stack's containers, volumes and networks (by its label) and its base folder."""
        label = f"label={LABEL_STACK}={self.name}"
        ids = docker("ps", "-aq", "--filter", label, check=False).stdout.split()
        if ids:
            docker("rm", "-fv", *ids, check=False)
        for vol in docker("volume", "ls", "-q", "--filter", label, check=False).stdout.split():
            docker("volume", "rm", "-f", vol, check=False)
        for net in docker("network", "ls", "-q", "--filter", label, check=False).stdout.split():
            docker("network", "rm", net, check=False)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def teardown(self) -> None:
        """Everything the bench created: the stack, the vault and stand-in folders."""
        self.remove_stack()
        shutil.rmtree(self.vault, ignore_errors=True)
        shutil.rmtree(self.stub_root, ignore_errors=True)


# --- sections ---------------------------------------------------------------------------------------


def timed_row(section: str, key: str, label: str, procs: list[Proc], note: str = "") -> Row:
    return Row(section, key, label, "s", [p.wall for p in procs], [p.cpu for p in procs], note=note)


def section_floor(b: Bench) -> list[Row]:
    """1. pyinfra's floor: an empty deploy file over the same inventory and connection."""
    empty = b.workdir / "empty_deploy.py"
    empty.write_text('"""No operations: what connecting and disconnecting cost."""\n')
    procs = []
    for _ in range(b.runs):
        run = b.deploy(LOCAL_INVENTORY, str(empty))
        if not run.ok:
            raise BenchError(f"empty deploy failed:\n{run.tail()}")
        procs.append(run.proc)
    return [timed_row("1", "floor", "pyinfra floor (connect, no operations)", procs)]


def in_turn(checkouts: list[Path], run: int) -> list[Path]:
    """The checkouts in the order of run ``run``: who goes first alternates, so neither always does."""
    return checkouts if run % 2 == 0 else checkouts[::-1]


def noop_runs(
    b: Bench, inventory: Path, checkouts: tuple[Path, ...] = (PROJECT_ROOT,)
) -> dict[Path, tuple[list[Proc], str]]:
    """``runs`` deploys of an already converged inventory by each checkout in turn, once its
    containers are past their healthchecks' start; only runs with 0 changes and no restart count."""
    b.settle()
    procs: dict[Path, list[Proc]] = {c: [] for c in checkouts}
    bad: dict[Path, list[str]] = {c: [] for c in checkouts}
    for i in range(b.runs):
        for checkout in in_turn(list(checkouts), i):
            before = b.started_at()
            run = b.deploy(inventory, checkout=checkout)
            if not run.ok:
                raise BenchError(f"no-op deploy ({checkout}) failed:\n{run.tail()}")
            if run.changed_ops or b.started_at() != before:
                what = run.changed_ops or "no operation, but a container restarted"
                bad[checkout].append(f"run {i + 1} ({run.proc.wall:.1f} s) changed {what}")
                continue
            procs[checkout].append(run.proc)
    return {c: (procs[c], "; ".join(f"excluded: {x}" for x in bad[c])) for c in checkouts}


def section_noop(b: Bench, baseline: Path | None = None) -> list[Row]:
    """2. the full stack deployed again: 0 changes, no restart (and by the baseline's deploy.py, in turn)."""
    b.converge()
    if baseline:
        b.deploy(checkout=baseline)  # untimed: its first run writes its bytecode
    checkouts = (PROJECT_ROOT, baseline) if baseline else (PROJECT_ROOT,)
    runs = noop_runs(b, LOCAL_INVENTORY, checkouts)
    procs, note = runs[PROJECT_ROOT]
    b.noop_samples = procs
    rows = [timed_row("2", "noop", "no-op, full stack (0 changes)", procs, note)]
    if baseline:
        procs, note = runs[baseline]
        rows.append(timed_row("2", "noop_baseline", "  the same, baseline", procs, note or str(baseline)))
    return rows


def gateway_restart_to_ready(b: Bench) -> float:
    """Seconds from ``docker restart`` of agentgateway (as the deploy does it) until its readiness
    endpoint answers, probed from the ingress as the deploy does, every 0.05 s."""
    probe = ["exec", b.container("ingress"), "wget", "-q", "-O", "/dev/null"]
    probe.append(f"http://agentgateway:{GATEWAY_READINESS_PORT}/healthz/ready")
    start = time.monotonic()
    docker("restart", "--time", "10", b.container("agentgateway"))
    while docker(*probe, check=False).returncode != 0:
        if time.monotonic() - start > 120:
            raise BenchError("agentgateway did not become ready within 120 s of a restart")
        time.sleep(0.05)
    return time.monotonic() - start


def section_change(b: Bench, baseline: Path | None = None) -> list[Row]:
    """3. a one-scope change, alternating with the inventory as it is so that every run changes
    something (by this tree and the baseline's in turn); only runs that restart agentgateway alone
    (and change only its operations) count."""
    if not b.gateway_image:
        return [Row("3", "change", "one-scope change", "s", note=f"skipped: {b.gateway_missing}")]
    changed_inv = b.variant("scope_change", SCOPE_CHANGE)
    b.converge()
    gateway = b.container("agentgateway")
    checkouts = [PROJECT_ROOT, baseline] if baseline else [PROJECT_ROOT]
    procs: dict[Path, list[Proc]] = {c: [] for c in checkouts}
    bad: dict[Path, list[str]] = {c: [] for c in checkouts}
    changes = 0
    for i in range(b.runs):
        for checkout in in_turn(checkouts, i):
            inventory = changed_inv if changes % 2 == 0 else LOCAL_INVENTORY
            changes += 1
            b.settle()
            before = b.started_at()
            run = b.deploy(inventory, checkout=checkout)
            if not run.ok:
                raise BenchError(f"one-scope change deploy ({checkout}) failed:\n{run.tail()}")
            after = b.started_at()
            restarted = {n for n in after if after[n] != before.get(n)}
            only_gateway = restarted == {gateway} and all("agentgateway" in op for op in run.changed_ops)
            if not only_gateway:
                what = f"restarted {sorted(restarted)}, changed {run.changed_ops}"
                bad[checkout].append(f"run {i + 1} ({run.proc.wall:.1f} s) {what}")
                continue
            procs[checkout].append(run.proc)
    if changes % 2:
        b.converge()  # end on the inventory as it is
    restarts = [gateway_restart_to_ready(b) for _ in range(b.runs)]
    note = "; ".join(f"excluded: {x}" for x in bad[PROJECT_ROOT])
    rows = [timed_row("3", "change", "one-scope change (agentgateway restarts)", procs[PROJECT_ROOT], note)]
    if baseline:
        note = "; ".join(f"excluded: {x}" for x in bad[baseline]) or str(baseline)
        rows.append(timed_row("3", "change_baseline", "  the same, baseline", procs[baseline], note))
    rows.append(
        Row("3", "gateway_restart", "  agentgateway restart-to-ready", "s", restarts, note="docker restart + probe")
    )
    return rows


def section_cold(b: Bench) -> list[Row]:
    """5. cold deploy: every image present, no container, volume, network or base folder; the
    secrets store (on the deploying machine) and the vault's data are kept."""
    notes_image = build_image_tag(
        Backend(name="notes", build="notes-vault", base_image=PYTHON_BASE, port=8080, scope="notes:read"),
        build_files("notes-vault"),
    )
    if not image_exists(notes_image):
        b.converge()  # builds the notes image once, so that every timed run finds it present
        b.notes.append(f"cold: the notes image {notes_image} was built by an untimed deploy first")
    procs = []
    for _ in range(b.runs):
        b.remove_stack()
        run = b.deploy()
        if not run.ok:
            raise BenchError(f"cold deploy failed:\n{run.tail()}")
        procs.append(run.proc)
    return [timed_row("5", "cold", "cold deploy, images present, empty base folder", procs)]


def slope(xs: list[int], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def section_scale(b: Bench) -> list[Row]:
    """4. the no-op with more container backends, and the seconds each one adds (the slope of a
    least-squares line through 1, 3, 10, 20 backends, once per run)."""
    by_size: dict[int, list[Proc]] = {}
    rows = []
    if b.noop_samples:
        by_size[1] = b.noop_samples  # section 2 measured it in this invocation
    else:
        b.converge()
        by_size[1], note = noop_runs(b, LOCAL_INVENTORY)[PROJECT_ROOT]
        rows.append(timed_row("4", "noop_1", "no-op, 1 backend", by_size[1], note))
    for size in b.sizes:
        inventory = b.scaled(size)
        b.converge(inventory)
        by_size[size], note = noop_runs(b, inventory)[PROJECT_ROOT]
        rows.append(timed_row("4", f"noop_{size}", f"no-op, {size} backends", by_size[size], note))
    b.converge()  # back to the one backend: the stand-ins, their networks and files go
    sizes = sorted(by_size)
    if len(sizes) < 2:
        return rows
    runs = min(len(v) for v in by_size.values())
    per_run = [slope(sizes, [by_size[s][i].wall for s in sizes]) for i in range(runs)]
    cpu = [slope(sizes, [by_size[s][i].cpu for s in sizes]) for i in range(runs)]
    rows.append(Row("4", "per_backend", "  added per backend (no-op)", "s", per_run, cpu, note=f"fit over {sizes}"))
    return rows


def section_cli(b: Bench, baseline: Path | None = None) -> list[Row]:
    """6. ``mcpgate check`` and ``mcpgate render`` on this machine, 1 and 20 backends: as a re-run
    finds them (the record of passed checks, mcpgate/memo.py, in place), with that record off (as
    the first run after the key or a config changed), and with a baseline checkout's CLI; run by
    run in turn, so that all three share the machine's load."""
    rows = []
    variants: dict[str, tuple[Path, dict[str, str]]] = {"": (PROJECT_ROOT, {})}
    variants[" (memo off)"] = (PROJECT_ROOT, {"MCPGATE_NO_MEMO": "1"})
    if baseline:
        variants[" (baseline)"] = (baseline, {})
    for size in (1, 20):
        inventory = b.scaled(size)
        b.stub_root.mkdir(exist_ok=True)
        for command in ("check", "render"):
            procs: dict[str, list[Proc]] = {k: [] for k in variants}
            for i in range(b.runs):
                for which, (checkout, env) in variants.items():
                    out = b.workdir / f"render-{size}-{i}"
                    args = [command, str(inventory)] + (["--out", str(out)] if command == "render" else [])
                    proc = b.mcpgate(*args, checkout=checkout, env=env)
                    if proc.returncode != 0:
                        raise BenchError(f"mcpgate {command}{which} failed: {proc.output[-2000:]}")
                    shutil.rmtree(out, ignore_errors=True)
                    procs[which].append(proc)
            for which in variants:
                label = f"mcpgate {command}, {size} backend{'s' if size > 1 else ''}{which}"
                key = f"{command}_{size}" + (f"_{which.strip(' ()').replace(' ', '_')}" if which else "")
                note = str(baseline) if which == " (baseline)" else ""
                rows.append(timed_row("6", key, label, procs[which], note=note))
    return rows


# --- 7. request overhead ---------------------------------------------------------------------------

# The load client (stdlib only) runs with the base image's python3 in a container on a stack network.
LOAD_CLIENT = Path(__file__).with_name("mcp_load.py")


@dataclass
class Target:
    """Where a load client connects, and from which network."""

    network: str
    host: str
    port: int
    authority: str  # the Host header
    token: str | None


def access_token(b: Bench) -> str:
    """Alice's access token for notes:read, through the real authorization-code flow."""
    from tests.e2e.oauth import Flow, Session, login_alice

    session = Session(f"http://127.0.0.1:{b.port}", HOSTNAME)
    flow = Flow(session, "claude-ai", "openid offline_access notes:read", resource=f"https://{HOSTNAME}/mcp")
    code = login_alice(flow, b.store_file)
    r = flow.token(code, b.store_file("clients/claude-ai.secret"))
    if r.status_code != 200:
        raise BenchError(f"token request: {r.status_code} {r.text[:300]}")
    return r.json()["access_token"]


def load(b: Bench, target: Target, clients: int, calls: int, seconds: float) -> dict[str, Any]:
    """One load run in a short-lived container on ``target.network``; the client's JSON report."""
    cfg = {
        "host": target.host,
        "port": target.port,
        "authority": target.authority,
        "token": target.token,  # on stdin: never on a command line
        "path": "/mcp",
        "arguments": {"path": "shopping.md"},
        "clients": clients,
        "calls": calls,
        "warmup": 5,
        "seconds": seconds,
    }
    cmd = ["docker", "run", "--rm", "-i", "--network", target.network, "--label", f"{LABEL_STACK}={b.name}"]
    cmd += ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "65534:65534"]
    cmd += [PYTHON_BASE, "python3", "-c", LOAD_CLIENT.read_text()]
    r = subprocess.run(cmd, input=json.dumps(cfg), capture_output=True, text=True, timeout=seconds + 120)
    try:
        report = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"load client failed (exit {r.returncode}): {r.stderr[-1000:]}") from None
    if "error" in report or not report["latencies_ms"]:
        raise BenchError(f"load client against {target.host}: {report.get('error') or report.get('first_error')}")
    return report


def percentile(values: list[float], p: int) -> float:
    """The p-th percentile (statistics.quantiles, inclusive method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# The paths a load run can take. "chain" is the whole way (ingress, agentgateway, backend); each
# other one leaves out the hops in front of it, so that the difference of two is one hop's cost.
PATHS = {
    "direct": "the backend alone",
    "gateway_only": "agentgateway + backend",
    "chain": "ingress + agentgateway + backend",
    "canned": "the canned upstream alone",
    "ingress_only": "ingress + canned upstream",
}
CANNED = Path(__file__).with_name("canned_mcp.py")


def start_hop_stand(b: Bench) -> None:
    """A second ingress (the stack's own image, command and rendered Caddyfile) in front of a canned
    MCP upstream that answers as ``agentgateway:3000``, on a network of the bench's own: Caddy's
    cost alone, with the same configuration, measured beside the real chain."""
    net = b.container("hop")
    docker("network", "create", "--internal", "--label", f"{LABEL_STACK}={b.name}", net)
    cmd = ["run", "-d", "--name", b.container("hop-canned"), "--label", f"{LABEL_STACK}={b.name}"]
    cmd += ["--network", net, "--network-alias", "agentgateway", "--read-only", "--cap-drop", "ALL"]
    cmd += ["--user", "65534:65534", PYTHON_BASE, "python3", "-c", CANNED.read_text(), "3000"]
    docker(*cmd)
    real = json.loads(docker("inspect", b.container("ingress")).stdout)[0]
    cfg, host = real["Config"], real["HostConfig"]
    cmd = ["run", "-d", "--name", b.container("hop-ingress"), "--label", f"{LABEL_STACK}={b.name}"]
    cmd += ["--network", net, "--network-alias", "hop-ingress"]
    for bind in host.get("Binds") or []:
        cmd += ["-v", bind]
    for m in real.get("Mounts") or []:
        if m["Type"] == "bind" and not host.get("Binds"):
            cmd += ["--mount", f"type=bind,src={m['Source']},dst={m['Destination']},readonly"]
    if cfg.get("User"):
        cmd += ["--user", cfg["User"]]
    if cfg.get("Entrypoint"):
        cmd += ["--entrypoint", cfg["Entrypoint"][0]]
    cmd += [cfg["Image"], *(cfg.get("Entrypoint") or [])[1:], *(cfg.get("Cmd") or [])]
    docker(*cmd)
    probe = ["exec", b.container("hop-ingress"), "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8081/healthz"]
    deadline = time.monotonic() + 60
    while docker(*probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise BenchError("the per-hop ingress did not answer its health endpoint within 60 s")
        time.sleep(0.2)


def section_requests(b: Bench, args: argparse.Namespace) -> list[Row]:
    """7. tools/call latency through ingress + agentgateway against straight to the backend, both
    from a container on a stack network (the backend's network has no route from the host); and
    per hop: agentgateway alone (on its own network, past the ingress) and the ingress alone (a
    copy of it in front of a canned upstream), all in the same runs."""
    if not b.gateway_image:
        return [Row("7", "requests", "request overhead", "ms", note=f"skipped: {b.gateway_missing}")]
    b.converge(b.variant("wide_bucket", WIDE_BUCKET))
    token = access_token(b)
    start_hop_stand(b)
    targets = {
        "direct": Target(f"{b.name}-to-notes", "notes", 8080, "notes:8080", None),
        "gateway_only": Target(f"{b.name}-gateway", "agentgateway", 3000, HOSTNAME, token),
        "chain": Target(f"{b.name}-edge", b.container("ingress"), INGRESS.port, HOSTNAME, token),
        "canned": Target(b.container("hop"), "agentgateway", 3000, HOSTNAME, None),
        "ingress_only": Target(b.container("hop"), "hop-ingress", INGRESS.port, HOSTNAME, token),
    }
    levels = {1: args.calls, 16: args.calls_per_client}
    stats: dict[tuple[str, int, str], list[float]] = {}
    errors = 0
    order = list(targets)
    for run in range(b.runs):
        for clients, calls in levels.items():
            # Rotate which path goes first, so that none always meets a warmer machine.
            shift = run % len(order)
            for name in order[shift:] + order[:shift]:
                report = load(b, targets[name], clients, calls, args.request_seconds)
                errors += report["errors"]
                for p in (50, 99):
                    stats.setdefault((name, clients, f"p{p}"), []).append(percentile(report["latencies_ms"], p))
    for c in ("hop-ingress", "hop-canned"):
        docker("rm", "-f", b.container(c), check=False)
    docker("network", "rm", b.container("hop"), check=False)
    b.converge()  # back to the inventory as it is
    return request_rows(stats, levels, errors)


def request_rows(stats: dict[tuple[str, int, str], list[float]], levels: dict[int, int], errors: int) -> list[Row]:
    """The table's lines for section 7: each percentile per path and level, the chain's cost over
    the backend, and each hop's share (the difference of two paths, run by run)."""
    rows = []

    def diff(a: str, b: str, clients: int, p: str) -> list[float]:
        return [x - y for x, y in zip(stats[(a, clients, p)], stats[(b, clients, p)], strict=True)]

    for clients, calls in levels.items():
        count = f"{calls} calls" if clients == 1 else f"{clients}x{calls} calls"
        c = f"{clients} client{'s' if clients > 1 else ''}"
        for p in ("p50", "p99"):
            chain, direct = stats[("chain", clients, p)], stats[("direct", clients, p)]
            rows.append(
                Row("7", f"{p}_gateway_{clients}", f"tools/call {p}, via gateway, {c}", "ms", chain, note=count)
            )
            rows.append(Row("7", f"{p}_direct_{clients}", f"tools/call {p}, direct, {c}", "ms", direct))
            rows.append(
                Row(
                    "7",
                    f"{p}_added_{clients}",
                    f"  added by ingress + gateway, {p}",
                    "ms",
                    diff("chain", "direct", clients, p),
                )
            )
        for p in ("p50", "p99"):
            rows.append(
                Row(
                    "7h",
                    f"{p}_hop_backend_{clients}",
                    f"hop: backend alone, {p}, {c}",
                    "ms",
                    stats[("direct", clients, p)],
                )
            )
            rows.append(
                Row(
                    "7h",
                    f"{p}_hop_gateway_{clients}",
                    f"hop: agentgateway alone, {p}, {c}",
                    "ms",
                    diff("gateway_only", "direct", clients, p),
                    note="gateway+backend - backend",
                )
            )
            rows.append(
                Row(
                    "7h",
                    f"{p}_hop_ingress_{clients}",
                    f"hop: Caddy alone, {p}, {c}",
                    "ms",
                    diff("ingress_only", "canned", clients, p),
                    note="Caddy+canned - canned",
                )
            )
            rows.append(
                Row(
                    "7h",
                    f"{p}_hop_canned_{clients}",
                    f"  (canned upstream alone, {p}, {c})",
                    "ms",
                    stats[("canned", clients, p)],
                    note="the client's own floor",
                )
            )
    if errors:
        rows[0].note += f"; {errors} failed calls (not in the figures)"
    return rows


# --- 8. memory ----------------------------------------------------------------------------------------

# First factors (password checks: argon2id, 64 MiB each) per burst, half alice, half bob, in waves of
# SIGN_IN_WAVE at once: eight at once take Authelia past its 512 MiB limit (seen: 502s at the ingress).
SIGN_INS, SIGN_IN_WAVE = 8, 4
# After the last burst: past Go's forced collection (every 2 minutes when nothing allocates), after
# which Authelia's runtime gives the argon2 memory back to the system.
LONG_REST = 150
BURST_CLIENTS, BURST_CALLS = 16, 50  # tools/call through the ingress and gateway per burst


def rss_mib(b: Bench) -> dict[str, float]:
    """Resident memory (MiB) of each of the stack's running containers: the sum of its processes'
    RSS as ``docker top`` reads it from the host (page cache not counted, unlike docker stats)."""
    out = {}
    for name in docker("ps", "--format", "{{.Names}}", "--filter", f"label={LABEL_STACK}={b.name}").stdout.split():
        if not name.startswith(f"{b.name}-"):
            continue  # a load client (unnamed), not a service
        lines = docker("top", name, "-o", "pid,rss").stdout.strip().splitlines()[1:]
        out[name.removeprefix(b.name + "-")] = sum(int(line.split()[1]) for line in lines) / 1024
    return out


def sign_in_waves(b: Bench, failures: list[Exception]) -> None:
    """SIGN_INS password sign-ins, SIGN_IN_WAVE at once; errors go to ``failures``."""
    for _ in range(SIGN_INS // SIGN_IN_WAVE):
        users = ["alice", "bob"] * (SIGN_IN_WAVE // 2)
        wave = [threading.Thread(target=_collect, args=(first_factor, (b, u), failures)) for u in users]
        for t in wave:
            t.start()
        for t in wave:
            t.join()


def oom_killed(b: Bench) -> list[str]:
    """The stack's containers the kernel killed for memory, or that restarted, since they started."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL_STACK}={b.name}").stdout.split()
    return [
        f"{c['Name'].lstrip('/')} (OOMKilled {c['State']['OOMKilled']}, restarts {c['RestartCount']})"
        for c in json.loads(docker("inspect", *ids).stdout)
        if c["State"]["OOMKilled"] or c["RestartCount"]
    ]


def first_factor(b: Bench, user: str) -> None:
    """An authorization request and its password sign-in (Authelia's argon2 check), no TOTP."""
    from tests.e2e.oauth import Flow, Session

    session = Session(f"http://127.0.0.1:{b.port}", HOSTNAME)
    flow = Flow(session, "claude-ai", "openid notes:read", resource=f"https://{HOSTNAME}/mcp")
    r = flow.authorize()
    if r.status_code not in (302, 303) or not flow.flow_id:
        raise BenchError(f"authorize for a sign-in: {r.status_code}")
    r = flow.first_factor(user, b.store_file(f"users/{user}.password"))
    try:
        ok = r.json().get("status") == "OK"
    except ValueError:
        ok = False
    if not ok:
        raise BenchError(f"first factor for {user}: {r.status_code} {r.text[:200]}")


def section_memory(b: Bench, args: argparse.Namespace) -> list[Row]:
    """8. RSS of each container: at rest (after a deploy, before any sign-in), right after a burst of
    sign-ins and tool calls, at rest again 15 s later, and 150 s after the last burst (both judged)."""
    if not b.gateway_image:
        return [Row("8", "memory", "memory", "MiB", note=f"skipped: {b.gateway_missing}")]
    b.converge(b.variant("wide_bucket", WIDE_BUCKET))  # the burst's calls must not meet 429s
    time.sleep(10)
    samples: dict[str, list[dict[str, float]]] = {"rest": [], "burst": [], "settled": [], "rested": []}
    for _ in range(b.runs):
        samples["rest"].append(rss_mib(b))
        time.sleep(2)
    token = access_token(b)  # one full sign-in (password, TOTP, consent, token)
    chain = Target(f"{b.name}-edge", b.container("ingress"), INGRESS.port, HOSTNAME, token)
    for _ in range(b.runs):
        failures: list[Exception] = []
        signing_in = threading.Thread(target=sign_in_waves, args=(b, failures))
        signing_in.start()
        load(b, chain, BURST_CLIENTS, BURST_CALLS, args.request_seconds)
        signing_in.join()
        killed = oom_killed(b)
        if failures or killed:
            raise BenchError(f"sign-in burst: {failures[0] if failures else ''}; out of memory: {killed or 'none'}")
        samples["burst"].append(rss_mib(b))
        time.sleep(15)
        samples["settled"].append(rss_mib(b))
    time.sleep(LONG_REST - 15)
    for _ in range(b.runs):
        samples["rested"].append(rss_mib(b))
        time.sleep(2)
    rows = []
    what = {
        "rest": "at rest",
        "burst": f"after {SIGN_INS} sign-ins ({SIGN_IN_WAVE} at once) + {BURST_CLIENTS}x{BURST_CALLS} calls",
        "settled": "at rest after sign-ins (15 s)",
        "rested": f"at rest after sign-ins ({LONG_REST} s)",
    }
    for phase, label in what.items():
        names = sorted(samples[phase][0])
        for name in names:
            rows.append(
                Row(
                    "8",
                    f"rss_{phase}_{name}",
                    f"  RSS {name}, {label}",
                    "MiB",
                    [s.get(name, 0.0) for s in samples[phase]],
                )
            )
        rows.append(
            Row(
                "8", f"rss_{phase}_total", f"RSS whole stack, {label}", "MiB", [sum(s.values()) for s in samples[phase]]
            )
        )
    return rows


def _collect(fn: Callable[..., None], args: tuple[Any, ...], failures: list[Exception]) -> None:
    """``fn(*args)`` in a thread; an error is kept for the section to report, not lost."""
    try:
        fn(*args)
    except Exception as err:
        failures.append(err)


# --- goals, table, JSON ------------------------------------------------------------------------------


def judge(rows: list[Row]) -> None:
    """Ratios to the floor, and PASS/MISS against the goals from the issue."""
    by_key = {r.key: r for r in rows}
    floor = by_key.get("floor")
    for r in rows:
        # Ratios for pyinfra runs of deploy.py only: they pay the floor; the CLI and docker do not.
        deploy_run = r.key in ("noop", "change", "cold") or r.key.startswith("noop_")
        if floor and floor.median and deploy_run and r.median is not None:
            r.ratio = r.median / floor.median

    def goal(key: str, text: str, passed: Callable[[Row], bool | None]) -> None:
        r = by_key.get(key)
        if r is None or r.median is None:
            return
        r.goal = text
        ok = passed(r)
        r.verdict = "" if ok is None else "PASS" if ok else "MISS"

    # The goals of issue 26 (bench/README.md, "Goals").
    goal("noop", "<= 1.3x floor", lambda r: r.ratio is None or r.ratio <= 1.3)
    noop, restart = by_key.get("noop"), by_key.get("gateway_restart")
    if noop and noop.median and restart and restart.median:
        limit = noop.median + restart.median
        goal("change", f"<= no-op + restart ({limit:.2f} s)", lambda r: r.median <= limit)
    goal("per_backend", "<= 0.1 s", lambda r: r.median <= 0.1)
    goal("cold", "<= 60 s", lambda r: r.median <= 60)
    for size in (1, 20):
        goal(f"check_{size}", "<= 0.5 s", lambda r: r.median <= 0.5)
        goal(f"render_{size}", "<= 0.4 s", lambda r: r.median <= 0.4)
    goal("p50_added_1", "<= +1.5 ms", lambda r: r.median <= 1.5)
    goal("p50_added_16", "<= +5 ms", lambda r: r.median <= 5)
    goal("rss_settled_total", "<= 256 MiB", lambda r: r.median <= 256)
    goal("rss_rested_total", "<= 256 MiB", lambda r: r.median <= 256)


def goal_lines(rows: list[Row]) -> list[str]:
    """One PASS/MISS line per goal: the figure (median, min), the limit, and its note."""
    out = []
    for r in rows:
        if r.verdict:
            low = fmt(min(r.values), r.unit)
            cpu = f", CPU {fmt(statistics.median(r.cpu), r.unit)} {r.unit}" if r.cpu else ""
            text = f"{r.verdict}  {r.label.strip()}: {fmt(r.median, r.unit)} {r.unit} (min {low}{cpu}), goal {r.goal}"
            text += f", load {r.load}"
            out.append(text + (f"  [{r.note}]" if r.note else ""))
    return out


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "MiB"):
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def table(rows: list[Row], header: str) -> str:
    """The one table: figure, median/min/max, CPU, ratio to the floor, goal and verdict."""
    head = ("#", "measure", "unit", "median", "min", "max", "CPU med", "x floor", "load", "goal", "result", "note")
    lines = [head]
    for r in rows:
        cpu = statistics.median(r.cpu) if r.cpu else None
        lines.append(
            (
                r.section,
                r.label,
                r.unit,
                fmt(r.median, r.unit),
                fmt(min(r.values, default=None), r.unit),
                fmt(max(r.values, default=None), r.unit),
                fmt(cpu, r.unit),
                f"{r.ratio:.1f}x" if r.ratio is not None else "",
                r.load,
                r.goal,
                r.verdict,
                r.note,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    out = [header]
    for line in lines:
        cells = [c.rjust(w) if 3 <= i <= 7 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=False))]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """What the figures were measured on, and the code they measured."""
    git = ["git", "-C", str(PROJECT_ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    server = docker("version", "--format", "{{.Server.Version}}", check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "docker": server,
        "commit": commit + ("+dirty" if dirty.stdout.strip() else ""),
    }


def write_json(data: dict[str, Any]) -> Path:
    """bench/results/<UTC time>.json and latest.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{data['started']}.json"
    text = json.dumps(data, indent=2) + "\n"
    path.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    return path


# --- main ------------------------------------------------------------------------------------------------


def missing_requirements() -> str | None:
    """Why the harness cannot take a deploy here, or None."""
    if os.geteuid() != 0:
        return "run as root (the deploy's folders and the SSH target are root's)"
    if docker("info", check=False, timeout=30).returncode != 0:
        return "no Docker engine answers (tests/harness/docker-up.sh)"
    for ref in (*LOCAL_IMAGES.values(), PYTHON_BASE):
        if not image_exists(ref):
            return f"local image {ref} is missing (tests/harness/build-images.sh)"
    if not (SSHD_DIR / "id_ed25519").is_file():
        return f"no SSH target key in {SSHD_DIR} (tests/harness/sshd-up.sh)"
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3; fewer is for trying the bench)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections, of: {','.join(SECTIONS)}")
    p.add_argument("--sizes", default="3,10,20", help="backend counts for the scale section (default 3,10,20)")
    p.add_argument("--calls", type=int, default=300, help="sequential tools/call per run, 1 client (default 300)")
    p.add_argument("--calls-per-client", type=int, default=100, help="calls per client at 16 clients (default 100)")
    p.add_argument("--logs", type=Path, help="keep every pyinfra run's output in this folder")
    p.add_argument(
        "--profile",
        type=Path,
        help="run every pyinfra run under cProfile, its stats in this folder (read with python -m pstats);\n"
        "the profiler slows the runs: their figures are not for comparing with goals",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. ../mcpgate-before) whose deploy (noop, change) and CLI (cli) are timed in turn",
    )
    p.add_argument("--request-seconds", type=float, default=60, help="time bound of one load run (default 60)")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown or args.runs < 1:
        p.error(f"unknown sections {sorted(unknown)}" if unknown else "--runs must be at least 1")
    args.size_list = sorted({int(s) for s in args.sizes.split(",") if s.strip()} - {1})
    if args.baseline:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "deploy.py").is_file() or not (args.baseline / "mcpgate").is_dir():
            p.error(f"--baseline {args.baseline}: no mcpgate checkout there (deploy.py and mcpgate/)")
    return args


def run_sections(b: Bench, args: argparse.Namespace) -> list[Row]:
    """Each selected section in an order where each finds the stack it needs; a failing section
    is reported and the others still run."""
    sections: dict[str, Callable[[], list[Row]]] = {
        "floor": lambda: section_floor(b),
        "cold": lambda: section_cold(b),
        "noop": lambda: section_noop(b, args.baseline),
        "change": lambda: section_change(b, args.baseline),
        "memory": lambda: section_memory(b, args),
        "requests": lambda: section_requests(b, args),
        "scale": lambda: section_scale(b),
        "cli": lambda: section_cli(b, args.baseline),
    }
    rows: list[Row] = []
    for name in SECTIONS:
        if name not in args.sections:
            continue
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        print(f"[bench] {name} ... (load {load_before:.2f})", file=sys.stderr, flush=True)
        try:
            new = sections[name]()
            for r in new:
                r.load = f"{load_before:.1f}->{os.getloadavg()[0]:.1f}"
            rows += new
        except (BenchError, RuntimeError, subprocess.TimeoutExpired) as err:
            b.failed.append(name)
            b.notes.append(f"{name}: failed: {str(err)[-1500:]}")
            print(f"[bench] {name} failed: {str(err)[-2000:]}", file=sys.stderr, flush=True)
        print(f"[bench] {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return sorted(rows, key=lambda r: r.section)  # the order; stable within a section


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = missing_requirements()
    if reason:
        print(f"bench: cannot run: {reason}", file=sys.stderr)
        return 2
    # A plain kill still tears the stack down (the finally below); Ctrl-C already does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    before = machine()
    workdir = Path(tempfile.mkdtemp(prefix="mcpgate-bench-"))
    b = Bench(workdir, args.runs, args.size_list, args.logs, args.profile)
    print(f"[bench] stack {b.name}, port {b.port}, pool {b.pool}, work folder {workdir}", file=sys.stderr)
    rows: list[Row] = []
    try:
        b.prepare()
        rows = run_sections(b, args)
    except BenchError as err:
        b.failed.append("prepare")
        b.notes.append(f"prepare: failed: {err}")
    finally:
        b.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
    report(b, args, rows, started, before)
    return 0


def report(b: Bench, args: argparse.Namespace, rows: list[Row], started: str, before: dict[str, Any]) -> None:
    """Judge the figures, print the table and its notes, and write the JSON."""
    judge(rows)
    if args.runs < 3:
        b.notes.append(f"only {args.runs} run(s) per figure: a trial, not a result")
    if args.profile:
        b.notes.append(f"every pyinfra run ran under cProfile (stats in {args.profile}): its figures are slowed")
    header = (
        f"mcpgate converge benchmark, {started}, commit {before['commit']}, {args.runs} run(s) per figure, "
        f"{before['cpus']} CPUs, load {before['loadavg'][0]:.2f} -> {os.getloadavg()[0]:.2f}, "
        f"agentgateway {b.gateway_image or 'absent'}"
    )
    text = table(rows, header) + "\n\ngoals (issue 26):\n" + "\n".join(goal_lines(rows))
    print(text)
    for note in b.notes:
        print(f"note: {note}")
    data = {
        "started": started,
        "command": " ".join(["bench/converge.py", *sys.argv[1:]]),
        "complete": set(args.sections) == set(SECTIONS) and args.runs >= 3 and not b.failed and not args.profile,
        "runs": args.runs,
        "sections": args.sections,
        "machine": before | {"loadavg_after": os.getloadavg()},
        "agentgateway_image": b.gateway_image,
        "table": text,
        "rows": [r.as_json() for r in rows],
        "notes": b.notes,
    }
    print(f"written: {write_json(data).relative_to(PROJECT_ROOT)} and bench/results/latest.json")


if __name__ == "__main__":
    sys.exit(main())
