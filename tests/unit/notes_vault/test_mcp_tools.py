"""The MCP surface, in process: tool list, schemas, results, and refusals as isError results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from notes_vault.server import SEARCH_HARD_MAX_RESULTS, Config, create_server
from notes_vault.vault import Limits, Vault

EXPECTED_TOOLS = {"search", "read", "write", "delete"}


def call_all(vault_dir: Path, calls: list[tuple[str, dict[str, Any]]], limits: Limits | None = None) -> list[Any]:
    server = create_server(Config(root=str(vault_dir)), Vault(vault_dir, limits))

    async def main() -> list[CallToolResult]:
        async with Client(server) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(main)


def call(vault_dir: Path, name: str, args: dict[str, Any], limits: Limits | None = None) -> CallToolResult:
    return call_all(vault_dir, [(name, args)], limits)[0]


def text(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def with_client(vault_dir: Path, fn: Callable[[Client], Awaitable[Any]]) -> Any:
    server = create_server(Config(root=str(vault_dir)))

    async def main() -> Any:
        async with Client(server) as client:
            return await fn(client)

    return anyio.run(main)


def test_lists_exactly_the_four_tools_with_good_metadata(vault_dir: Path) -> None:
    async def list_tools(client: Client) -> Any:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in with_client(vault_dir, list_tools)}
    assert set(tools) == EXPECTED_TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60
        assert tool.title
        assert tool.input_schema["type"] == "object"
        for prop in tool.input_schema["properties"].values():
            assert prop.get("description"), f"{tool.name}: every parameter needs a description"
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["max_results"]["maximum"] == SEARCH_HARD_MAX_RESULTS
    assert search["properties"]["max_results"]["minimum"] == 1
    assert tools["write"].input_schema["required"] == ["path", "content"]
    assert tools["read"].input_schema["required"] == ["path"]
    assert tools["delete"].input_schema["required"] == ["path"]
    assert tools["search"].annotations and tools["search"].annotations.read_only_hint is True
    assert tools["read"].annotations and tools["read"].annotations.read_only_hint is True
    assert tools["write"].annotations and tools["write"].annotations.destructive_hint is True
    assert tools["delete"].annotations and tools["delete"].annotations.destructive_hint is True


def test_search_tool(vault_dir: Path) -> None:
    result = call(vault_dir, "search", {"query": "pineapple"})
    assert not result.is_error
    assert result.structured_content == {
        "query": "pineapple",
        "matches": [
            {"path": "Welcome.md", "line_number": 2, "line": "This vault has a Secret word: PINEAPPLE."},
            {"path": "Daily/2025-01-31.md", "line_number": 1, "line": "Met Ärger about the pineapple pizza."},
        ],
        "truncated": False,
        "truncated_reason": None,
        "notes_scanned": 3,
    }


def test_search_tool_bounds(vault_dir: Path) -> None:
    result = call(vault_dir, "search", {"query": "a", "max_results": 1})
    assert result.structured_content is not None
    assert len(result.structured_content["matches"]) == 1
    assert result.structured_content["truncated"] is True
    too_many = call(vault_dir, "search", {"query": "a", "max_results": SEARCH_HARD_MAX_RESULTS + 1})
    assert too_many.is_error
    assert "max_results" in text(too_many)


def test_read_tool_returns_plain_text(vault_dir: Path) -> None:
    result = call(vault_dir, "read", {"path": "Projects/mcpgate/Plan.md"})
    assert not result.is_error
    assert text(result) == "# Plan\n- tailscale funnel\n- caddy\n- Authelia OIDC\n- agentgateway\n"


def test_write_read_delete_roundtrip(vault_dir: Path) -> None:
    results = call_all(
        vault_dir,
        [
            ("write", {"path": "Inbox/Idea.md", "content": "# Idea\nship it\n"}),
            ("read", {"path": "Inbox/Idea.md"}),
            ("write", {"path": "Inbox/Idea.md", "content": "v2", "overwrite": False}),
            ("write", {"path": "Inbox/Idea.md", "content": "v2"}),
            ("search", {"query": "V2", "folder": "Inbox"}),
            ("delete", {"path": "Inbox/Idea.md"}),
            ("read", {"path": "Inbox/Idea.md"}),
        ],
    )
    created, read1, refused, replaced, found, deleted, gone = results
    assert created.structured_content == {"path": "Inbox/Idea.md", "bytes_written": 15, "created": True}
    assert text(read1) == "# Idea\nship it\n"
    assert refused.is_error and "already exists" in text(refused)
    assert replaced.structured_content == {"path": "Inbox/Idea.md", "bytes_written": 2, "created": False}
    assert found.structured_content["matches"] == [{"path": "Inbox/Idea.md", "line_number": 1, "line": "v2"}]
    assert deleted.structured_content == {"path": "Inbox/Idea.md", "deleted": True}
    assert gone.is_error and "not found" in text(gone)
    assert not (vault_dir / "Inbox" / "Idea.md").exists()


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("read", {"path": "../outside/secret.md"}, "'..'"),
    ("read", {"path": "/etc/passwd"}, "absolute"),
    ("read", {"path": ""}, "at least 1 character"),
    ("read", {"path": "Welcome.md\x00"}, "NUL"),
    ("read", {"path": ".obsidian/workspace.md"}, "hidden"),
    ("read", {"path": "Daily/attachment.png"}, ".md"),
    ("read", {"path": "escape.md"}, "outside the vault"),
    ("read", {"path": "Linked/secret.md"}, "outside the vault"),
    ("read", {}, "path"),
    ("write", {"path": "../evil.md", "content": "x"}, "'..'"),
    ("write", {"path": "Linked/evil.md", "content": "x"}, "outside the vault"),
    ("write", {"path": "escape.md", "content": "x"}, "outside the vault"),
    ("write", {"path": "x.txt", "content": "x"}, ".md"),
    ("write", {"path": "big.md", "content": "x" * 65}, "write limit of 64 bytes"),
    ("delete", {"path": "../outside/secret.md"}, "'..'"),
    ("delete", {"path": "escape.md"}, "outside the vault"),
    ("delete", {"path": "Projects"}, ".md"),
    ("delete", {"path": ".trash/old.md"}, "hidden"),
    ("search", {"query": "pineapple", "folder": "../outside"}, "'..'"),
    ("search", {"query": "pineapple", "folder": "Linked"}, "outside the vault"),
    ("search", {"query": ""}, "at least 1 character"),
    ("nonexistent", {}, "nonexistent"),
]


@pytest.mark.parametrize(("tool", "args", "message"), REFUSALS)
def test_refusals_are_tool_errors(
    vault_dir: Path, outside_dir: Path, tool: str, args: dict[str, Any], message: str
) -> None:
    (vault_dir / "escape.md").symlink_to(outside_dir / "secret.md")
    (vault_dir / "Linked").symlink_to(outside_dir, target_is_directory=True)
    result = call(vault_dir, tool, args, Limits(max_write_bytes=64))
    assert result.is_error, f"{tool}({args}) should have been refused"
    assert message in text(result)
    assert "outside pineapple secret" not in text(result)
    assert str(outside_dir) not in text(result), "errors must not reveal paths outside the vault"
    assert (outside_dir / "secret.md").read_text() == "outside pineapple secret\n"
    assert sorted(p.name for p in outside_dir.iterdir()) == ["secret.md"]


def test_unexpected_errors_do_not_leak_details(vault_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: Vault, path: str) -> str:
        raise RuntimeError("internal detail /srv/secret")

    monkeypatch.setattr(Vault, "read", crash)
    result = call(vault_dir, "read", {"path": "Welcome.md"})
    assert result.is_error
    assert "internal detail" not in text(result)
