"""mcpgate/layout.py is the one place a service's folders, files, ports, names and the /auth prefix are
written: the render, the container specs and the templates agree with it and do not restate it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcpgate import layout
from mcpgate.container_specs import stack_containers
from mcpgate.model import Stack
from mcpgate.render import Rendered, render_stack
from mcpgate.secrets import StackSecrets

PROJECT = Path(__file__).resolve().parents[2]

# Literals only layout.py may write: container paths, in-network ports, the prefix and file names.
# (Comments are allowed to name them; code and templates take them from the layout.)
_RESTATED = [
    re.compile(r"""(?:^|["'^(])/auth\b"""),
    re.compile(r"\b(?:6379|9091|8081)\b"),
    re.compile(r"""["'](?:/config|/secrets|/identity|/etc/caddy)(?:/|["'])|["']/data/"""),
    # (a template's own name, e.g. redis/redis.conf.j2, is not a path on the host)
    re.compile(r"\b(?:users\.yml|totp\.yml|configuration\.yml|redis\.conf|config\.yaml|jwks\.json)\b(?!\.j2)"),
]


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that are not comments or docstrings."""
    lines = []
    in_docstring = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if path.suffix == ".py" and '"""' in stripped:
            in_docstring ^= stripped.count('"""') % 2 == 1
            continue
        if in_docstring or stripped.startswith("#") or stripped.startswith("{#"):
            continue
        lines.append((number, line.split(" # ", 1)[0] if path.suffix == ".py" else line))
    return lines


def _product_files() -> list[Path]:
    files = [*PROJECT.glob("mcpgate/**/*.py"), *PROJECT.glob("tasks/*.py"), PROJECT / "deploy.py"]
    files += PROJECT.glob("templates/**/*.j2")
    return sorted(f for f in files if f.name != "layout.py")


@pytest.mark.parametrize("path", _product_files(), ids=lambda p: str(p.relative_to(PROJECT)))
def test_no_module_or_template_restates_the_layout(path: Path) -> None:
    found = [
        f"{path.relative_to(PROJECT)}:{number}: {text.strip()}"
        for number, text in _code_lines(path)
        for pattern in _RESTATED
        if pattern.search(text)
    ]
    assert not found, "take these from mcpgate/layout.py:\n" + "\n".join(found)


@pytest.fixture
def rendered(stack: Stack, secrets: StackSecrets) -> Rendered:
    return render_stack(stack, secrets, inventory="inventory/test.py", host="gateway.lan")


def test_every_service_file_is_under_one_of_its_layout_folders(rendered: Rendered) -> None:
    for f in rendered.files:
        service = layout.SERVICES.get(f.path.split("/", 1)[0])
        if service is None:
            continue
        folders = [service.host_dir(role) for role in service.mounts]
        assert any(f.path.startswith(folder + "/") for folder in folders), f.path
    for name, service in layout.SERVICES.items():
        assert rendered.config(name).path == service.host_file("config", service.config)


def test_containers_mount_the_layout_folders_where_the_layout_says(stack: Stack, rendered: Rendered) -> None:
    specs = {spec.service: spec for spec in stack_containers(stack, rendered)}
    for name, service in layout.SERVICES.items():
        spec = specs[name]
        assert spec.name == layout.container_name(stack.name, name)
        binds = {m.source: m.target for m in spec.mounts if m.kind == "bind"}
        assert binds == {f"{stack.base_dir}/{service.host_dir(role)}": path for role, path in service.mounts.items()}
        assert service.config_file in spec.command
        volumes = {m.source: m.target for m in spec.mounts if m.kind == "volume"}
        if service.data:
            assert volumes == {layout.volume_name(stack.name, name): service.data}
        else:
            assert volumes == {}


def test_configs_name_the_paths_and_ports_of_the_layout(stack: Stack, rendered: Rendered) -> None:
    authelia = rendered.config("authelia").content.decode()
    assert f"0.0.0.0:{layout.AUTHELIA.port}{layout.AUTH_PREFIX}" in authelia
    assert f'path: "{layout.AUTHELIA.data}/{layout.AUTHELIA_USERS}"' in authelia
    assert f"port: {layout.REDIS.port}" in authelia
    assert f"port {layout.REDIS.port}" in rendered.config("redis").content.decode()
    caddyfile = rendered.config("ingress").content.decode()
    assert f"{layout.AUTHELIA.service}:{layout.AUTHELIA.port}" in caddyfile
    assert f":{layout.INGRESS.port} {{" in caddyfile
    gateway = rendered.config("agentgateway").content.decode()
    assert layout.AGENTGATEWAY.container_file("config", layout.AGENTGATEWAY_JWKS) in gateway
    assert stack.issuer == f"https://{stack.hostname}{layout.AUTH_PREFIX}"
    assert stack.resource == f"https://{stack.hostname}{layout.MCP_PATH}"
