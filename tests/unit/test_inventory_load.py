"""Loading an inventory file: every way the path or the file can be wrong is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcpgate.errors import InventoryError, MCPGateError
from mcpgate.hostops.inventory_file import load_inventory
from mcpgate.model import load_stack
from tests.conftest import BASE_STACK, PROJECT_ROOT


def _refused(path: str) -> str:
    with pytest.raises(MCPGateError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def test_a_folder_names_the_inventories_in_it(tmp_path: Path) -> None:
    (tmp_path / "home.py").write_text("hosts = []\n")
    message = _refused(str(tmp_path))
    assert "is a folder, not a file" in message and "home.py" in message


def test_a_missing_file_points_at_the_inventories_there_are() -> None:
    message = _refused(str(PROJECT_ROOT / "inventory" / "hoem.py"))
    assert "does not exist" in message and "home.py, local.py" in message


def test_a_missing_file_in_a_missing_folder_points_at_the_projects_inventories(tmp_path: Path) -> None:
    message = _refused(str(tmp_path / "nowhere" / "home.py"))
    assert "does not exist" in message and "home.py, local.py" in message


def test_no_path() -> None:
    assert "no inventory given" in _refused("")


def test_not_a_python_file() -> None:
    message = _refused(str(PROJECT_ROOT / "README.md"))
    assert "is not a Python file" in message and "inventory/home.py" in message


def test_not_a_regular_file() -> None:
    assert "is not a regular file" in _refused("/dev/null")


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (
            "hosts = [\n  ('box', {)\n",
            2,
            "closing parenthesis ')' does not match opening parenthesis '{' (in: ('box', {))",
        ),
        ("hosts = [('box', {'mcpgate': {\n", 1, "'{' was never closed"),
        ("hosts = [('box' {})]\n", 1, "syntax error"),
    ],
)
def test_a_syntax_error_is_one_line_with_its_place(tmp_path: Path, text: str, line: int, what: str) -> None:
    inv = tmp_path / "broken.py"
    inv.write_text(text)
    message = _refused(str(inv))
    assert message.startswith(f"{inv}:{line}: syntax error: ") and what in message


def test_an_inventory_that_raises_names_the_line(tmp_path: Path) -> None:
    inv = tmp_path / "raises.py"
    inv.write_text("x = 1\nhosts = [('box', {'mcpgate': 1 / 0})]\n")
    assert _refused(str(inv)) == f"loading inventory {inv}:2 failed: ZeroDivisionError: division by zero"


def test_an_invalid_stack_lists_its_problems(tmp_path: Path) -> None:
    inv = tmp_path / "bad.py"
    inv.write_text(f"hosts = [('box', {{'mcpgate': {{**{BASE_STACK!r}, 'tailscale': False}}}})]\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(str(inv))
    assert info.value.problems == ['tailscale: is a dict of settings, not False: write "tailscale": {"enabled": False}']


@pytest.mark.parametrize("name", ["home.py", "local.py"])
def test_the_example_inventories_load(name: str) -> None:
    (hs,) = load_inventory(str(PROJECT_ROOT / "inventory" / name))
    assert hs.stack.clients[0].id == "claude-ai"
    # What `mcpgate describe` writes (every field, defaults included) loads back the same.
    assert load_stack(hs.host, json.loads(hs.stack.model_dump_json())) == hs.stack


def test_the_cli_prints_the_line_and_no_traceback(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mcpgate", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"mcpgate: inventory {str(tmp_path)!r} is a folder, not a file: name one inventory file; "
        f"inventories in {PROJECT_ROOT / 'inventory'}: home.py, local.py"
    )
    assert "Traceback" not in r.stdout + r.stderr


# --- the plain-file reader against pyinfra's loader -------------------------------------------------


def _d(which: str) -> str:
    return f"{{'mcpgate': {{'which': {which!r}}}}}"


PLAIN = {
    "one host with data": f"hosts = [('h1', {_d('host')})]\n",
    "group data under host data": f"web = (['h1', ('h2', {_d('host')})], {_d('group')})\n",
    "the last group wins": f"a = (['h1'], {_d('a')})\nb = (['h1', 'h2'], {_d('b')})\nc = ['h2']\n",
    "host data of two groups merged": f"a = [('h1', {_d('a')})]\nb = [('h1', {{'other': 1}})]\n",
    "a later group's host data wins": f"a = [('h1', {_d('a')})]\nb = [('h1', {_d('b')})]\n",
    "@local and a host without data": f"local = [('@local', {_d('local')})]\nother = ['h9']\n",
    "underscored names and non-groups are ignored": (
        f"_x = [('h1', {_d('x')})]\nn = 3\nd = {{'a': 1}}\nh = [('h1', {_d('h')})]\n"
    ),
    "a list of names is a group": f"tools = ['read', 'write']\nh = [('h1', {_d('h')})]\n",
}
NOT_PLAIN = {
    "an all group": f"all = (['h1'], {_d('all')})\n",
    "a connector": f"hosts = [('@docker/debian', {_d('docker')})]\n",
    "a list that is not hosts": f"hosts = [('h1', {_d('h')})]\nscopes = ['a', {{'b': 1}}]\n",
    "a group tuple of three": f"web = (['h1'], {_d('group')}, 1)\n",
}


def _pyinfra_answer(path: Path, cwd: Path) -> list[tuple[str, object]]:
    """pyinfra's loader, in a fresh interpreter (it patches the process for gevent)."""
    code = (
        "import json, sys\n"
        "from mcpgate.hostops.inventory_file import _pyinfra_hosts\n"
        "print(json.dumps(_pyinfra_hosts(sys.argv[1])))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=cwd, check=True)
    return [tuple(x) for x in json.loads(r.stdout)]


@pytest.mark.parametrize("case", sorted(PLAIN))
def test_a_plain_inventory_reads_as_pyinfra_reads_it(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcpgate.hostops.inventory_file import _plain_hosts

    path = tmp_path / "inv.py"
    path.write_text(PLAIN[case])
    monkeypatch.chdir(tmp_path)
    plain = _plain_hosts(str(path))
    assert plain is not None, "read as plain"
    assert plain == _pyinfra_answer(path, tmp_path)


@pytest.mark.parametrize("case", sorted(NOT_PLAIN))
def test_anything_else_is_left_to_pyinfra(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcpgate.hostops.inventory_file import _plain_hosts

    path = tmp_path / "inv.py"
    path.write_text(NOT_PLAIN[case])
    monkeypatch.chdir(tmp_path)
    assert _plain_hosts(str(path)) is None


@pytest.mark.parametrize("where", ["cwd", "beside"])
def test_a_group_data_folder_is_left_to_pyinfra(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcpgate.hostops.inventory_file import _plain_hosts

    inv_dir = tmp_path / "inv"
    inv_dir.mkdir()
    path = inv_dir / "inv.py"
    path.write_text(PLAIN["one host with data"])
    (tmp_path if where == "cwd" else inv_dir).joinpath("group_data").mkdir()
    (tmp_path / "group_data").joinpath("all.py").write_text(
        "mcpgate = {'which': 'group_data'}\n"
    ) if where == "cwd" else None
    monkeypatch.chdir(tmp_path)
    assert _plain_hosts(str(path)) is None
    (hs,) = [h for h in _pyinfra_answer(path, tmp_path)]
    assert hs[0] == "h1"


@pytest.mark.parametrize("name", ["home.py", "local.py"])
def test_the_example_inventories_read_as_pyinfra_reads_them(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcpgate.hostops.inventory_file import _plain_hosts

    path = PROJECT_ROOT / "inventory" / name
    monkeypatch.chdir(PROJECT_ROOT)
    plain = _plain_hosts(str(path))
    assert plain is not None
    assert json.loads(json.dumps(plain)) == [list(x) for x in _pyinfra_answer(path, PROJECT_ROOT)]


def test_check_and_render_do_not_import_pyinfra_or_the_cel_repl(tmp_path: Path) -> None:
    """Half of their time was importing these (issue 26); the deploy still uses pyinfra."""
    inv, store, out = str(PROJECT_ROOT / "inventory" / "local.py"), str(tmp_path), str(tmp_path / "out")
    code = (
        "import sys, io, contextlib\n"
        "from mcpgate.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    codes = [main(['check', {inv!r}, '--secrets', {store!r}]),\n"
        f"             main(['render', {inv!r}, '--secrets', {store!r}, '--out', {out!r}])]\n"
        "print(codes, sorted(m for m in ('pyinfra', 'paramiko', 'prompt_toolkit', 'rich') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert r.stdout.strip() == "[0, 0] []"
    assert (tmp_path / "out" / "@local" / "agentgateway").is_dir()
