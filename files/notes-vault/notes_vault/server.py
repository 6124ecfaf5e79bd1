"""MCP server exposing an Obsidian-style Markdown vault over streamable HTTP.

Four tools: ``search``, ``read``, ``write`` and ``delete``. It is meant to sit behind
agentgateway (which authenticates callers and enforces per-tool scopes), so it has
no authentication of its own and must only be reachable on a private network.

Configuration (environment):

==================================  ==========  =============================================
variable                            default     meaning
==================================  ==========  =============================================
NOTES_VAULT_ROOT                    /vault      vault folder (mounted read-write)
NOTES_VAULT_HOST                    0.0.0.0     bind address
NOTES_VAULT_PORT                    8080        bind port; MCP endpoint is ``/mcp``
NOTES_VAULT_ALLOWED_HOSTS           (empty)     comma-separated Host header patterns such as
                                                ``notes:8080,notes:*``; empty disables the
                                                SDK's DNS-rebinding check (see below)
NOTES_VAULT_ALLOWED_ORIGINS         (empty)     Origin patterns, only used with ALLOWED_HOSTS
NOTES_VAULT_MAX_READ_BYTES          1048576     largest note ``read`` returns
NOTES_VAULT_MAX_WRITE_BYTES         1048576     largest content ``write`` accepts
NOTES_VAULT_SEARCH_MAX_FILE_BYTES   2097152     larger notes are skipped by ``search``
NOTES_VAULT_SEARCH_MAX_FILES        50000       notes scanned per ``search`` call at most
NOTES_VAULT_SEARCH_TIMEOUT          10          seconds one ``search`` may take
NOTES_VAULT_LOG_LEVEL               INFO        DEBUG, INFO, WARNING, ERROR
==================================  ==========  =============================================
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal, Self

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from notes_vault import __version__
from notes_vault.vault import MAX_QUERY_CHARS, Limits, Vault, VaultError

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
SEARCH_HARD_MAX_RESULTS = 200
SEARCH_DEFAULT_RESULTS = 20

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

INSTRUCTIONS = """\
Access to the user's Markdown notes vault (Obsidian-style: .md files in folders).
Paths are always relative to the vault root and use '/' separators, e.g. 'Projects/mcpgate.md'.
Use `search` to find notes by text, `read` to get a note, `write` to create or replace one
(always send the complete new content), and `delete` to remove one. Hidden folders such as
.obsidian and .trash are not accessible."""


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{key} must be a positive integer, got {raw!r}")
    return value


@dataclass(frozen=True)
class Config:
    root: str = "/vault"
    host: str = "0.0.0.0"
    port: int = 8080
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    log_level: LogLevel = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        level = env.get("NOTES_VAULT_LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"NOTES_VAULT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        defaults = Limits()
        timeout = float(env.get("NOTES_VAULT_SEARCH_TIMEOUT", "").strip() or defaults.search_timeout_s)
        if timeout <= 0:
            raise ValueError("NOTES_VAULT_SEARCH_TIMEOUT must be positive")
        return cls(
            root=env.get("NOTES_VAULT_ROOT", "").strip() or "/vault",
            host=env.get("NOTES_VAULT_HOST", "").strip() or "0.0.0.0",
            port=_int(env, "NOTES_VAULT_PORT", 8080),
            allowed_hosts=tuple(_csv(env.get("NOTES_VAULT_ALLOWED_HOSTS"))),
            allowed_origins=tuple(_csv(env.get("NOTES_VAULT_ALLOWED_ORIGINS"))),
            limits=Limits(
                max_read_bytes=_int(env, "NOTES_VAULT_MAX_READ_BYTES", defaults.max_read_bytes),
                max_write_bytes=_int(env, "NOTES_VAULT_MAX_WRITE_BYTES", defaults.max_write_bytes),
                search_max_file_bytes=_int(env, "NOTES_VAULT_SEARCH_MAX_FILE_BYTES", defaults.search_max_file_bytes),
                search_max_files=_int(env, "NOTES_VAULT_SEARCH_MAX_FILES", defaults.search_max_files),
                search_timeout_s=timeout,
                search_hard_max_results=SEARCH_HARD_MAX_RESULTS,
            ),
            log_level=level,  # type: ignore[arg-type]
        )

    def transport_security(self) -> TransportSecuritySettings:
        """Host/Origin header policy for the MCP endpoint.

        The SDK's DNS-rebinding protection rejects requests whose Host header is not in
        an allow-list (HTTP 421). It exists for servers on a developer's laptop, where a
        malicious web page can make the browser talk to ``localhost``. When the SDK is
        bound to 127.0.0.1/localhost it even turns the check on by itself with a
        localhost-only list, which would reject agentgateway's requests carrying
        ``Host: notes:8080``.

        In mcpgate this server listens only on a private container network; the sole
        client is agentgateway, which has already validated the caller's JWT and tool
        scopes, and no browser can reach it. So by default the check is explicitly
        *disabled* (also on 127.0.0.1, so local tests behave like the container). Set
        NOTES_VAULT_ALLOWED_HOSTS to turn it on with your own list, e.g.
        ``notes:8080,notes:*,127.0.0.1:*``.
        """
        if not self.allowed_hosts:
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(self.allowed_hosts),
            allowed_origins=list(self.allowed_origins),
        )


# ------------------------------------------------------------------ tool results


class SearchMatch(BaseModel):
    path: str = Field(description="Vault-relative path of the note, e.g. 'Projects/mcpgate.md'.")
    line_number: int = Field(description="1-based line number of the matching line.")
    line: str = Field(description="The matching line (long lines are clipped around the match).")


class SearchResult(BaseModel):
    query: str
    matches: list[SearchMatch]
    truncated: bool = Field(
        description="True if the search stopped early; more matches may exist. "
        "Narrow the query or the folder, or raise max_results."
    )
    truncated_reason: str | None = Field(
        default=None, description="Why it stopped early: max_results, max_files_scanned or time_budget."
    )
    notes_scanned: int = Field(description="How many notes were read to produce this answer.")


class WriteResult(BaseModel):
    path: str = Field(description="Vault-relative path that was written.")
    bytes_written: int
    created: bool = Field(description="True if the note did not exist before.")


class DeleteResult(BaseModel):
    path: str = Field(description="Vault-relative path that was deleted.")
    deleted: bool


NotePath = Annotated[
    str,
    Field(
        description="Vault-relative path of a Markdown note with '/' separators, ending in '.md', "
        "e.g. 'Daily/2025-01-31.md'. No leading '/', no '..', no hidden ('.'-prefixed) parts.",
        min_length=1,
        max_length=1024,
    ),
]


def _descriptions(limits: Limits) -> dict[str, str]:
    """Tool descriptions as Claude sees them, with this server's actual limits filled in."""
    return {
        "search": (
            "Full-text search of the notes vault. Finds Markdown notes whose text contains `query` "
            "(case-insensitive substring match, no regex) and returns, for each hit, the note's "
            "vault-relative path, the 1-based line number and the matching line. Results come in a "
            "stable order (folder by folder, names sorted). The search is bounded: it stops after "
            f"`max_results` matching lines (at most {SEARCH_HARD_MAX_RESULTS}) and reports "
            "`truncated: true` when it stopped early; hidden folders (.obsidian, .trash), symlinks and "
            f"notes over {limits.search_max_file_bytes} bytes are skipped. Use `read` with a returned "
            "path to get the whole note."
        ),
        "read": (
            "Read one Markdown note from the vault and return its full text. `path` is vault-relative, "
            "e.g. 'Projects/mcpgate.md' (as returned by `search`). Notes larger than "
            f"{limits.max_read_bytes} bytes are refused with an error."
        ),
        "write": (
            "Create a Markdown note or replace an existing one with new content. The write is atomic: "
            "readers see either the old note or the complete new one, never a partial file. Missing "
            "parent folders inside the vault are created. To edit a note, `read` it first and send back "
            "the full modified text; there is no append or patch mode. Content is limited to "
            f"{limits.max_write_bytes} bytes of UTF-8."
        ),
        "delete": (
            "Delete one Markdown note from the vault. This cannot be undone. Only single `.md` notes "
            "can be deleted, never folders. If the note is a symlink to another note, only the link "
            "is removed."
        ),
    }


def create_server(config: Config, vault: Vault | None = None) -> MCPServer:
    vault = vault or Vault(config.root, config.limits)
    limits = vault.limits
    descriptions = _descriptions(limits)
    mcp = MCPServer(
        "notes-vault",
        title="Notes vault",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level=config.log_level,
    )

    @mcp.tool(
        name="search",
        description=descriptions["search"],
        title="Search notes",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def search(
        query: Annotated[
            str,
            Field(
                description="Text to look for; plain substring, case-insensitive (no regex, no wildcards).",
                min_length=1,
                max_length=MAX_QUERY_CHARS,
            ),
        ],
        max_results: Annotated[
            int,
            Field(
                description=f"Maximum number of matching lines to return (1-{SEARCH_HARD_MAX_RESULTS}).",
                ge=1,
                le=SEARCH_HARD_MAX_RESULTS,
            ),
        ] = SEARCH_DEFAULT_RESULTS,
        folder: Annotated[
            str,
            Field(
                description="Only search inside this vault-relative folder, e.g. 'Projects'. "
                "Empty means the whole vault.",
                max_length=1024,
            ),
        ] = "",
        max_matches_per_note: Annotated[
            int,
            Field(description="At most this many matching lines from any single note (1-50).", ge=1, le=50),
        ] = 5,
    ) -> SearchResult:
        try:
            outcome = vault.search(
                query, max_results=max_results, folder=folder, max_matches_per_note=max_matches_per_note
            )
        except VaultError as exc:
            raise ToolError(str(exc)) from None
        return SearchResult(
            query=query,
            matches=[SearchMatch(path=p, line_number=n, line=text) for p, n, text in outcome.matches],
            truncated=outcome.truncated,
            truncated_reason=outcome.truncated_reason,
            notes_scanned=outcome.files_scanned,
        )

    @mcp.tool(
        name="read",
        description=descriptions["read"],
        title="Read a note",
        structured_output=False,  # the note text itself is the result; no JSON wrapper
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def read(path: NotePath) -> str:
        try:
            return vault.read(path)
        except VaultError as exc:
            raise ToolError(str(exc)) from None

    @mcp.tool(
        name="write",
        description=descriptions["write"],
        title="Create or replace a note",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    def write(
        path: NotePath,
        content: Annotated[
            str,
            Field(
                description="The complete new Markdown text of the note (UTF-8). It replaces the "
                f"whole note; at most {limits.max_write_bytes} bytes.",
            ),
        ],
        overwrite: Annotated[
            bool,
            Field(description="If false, refuse to replace a note that already exists."),
        ] = True,
    ) -> WriteResult:
        try:
            outcome = vault.write(path, content, overwrite=overwrite)
        except VaultError as exc:
            raise ToolError(str(exc)) from None
        return WriteResult(path=outcome.path, bytes_written=outcome.bytes_written, created=outcome.created)

    @mcp.tool(
        name="delete",
        description=descriptions["delete"],
        title="Delete a note",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    )
    def delete(path: NotePath) -> DeleteResult:
        try:
            deleted = vault.delete(path)
        except VaultError as exc:
            raise ToolError(str(exc)) from None
        return DeleteResult(path=deleted, deleted=True)

    @mcp.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> Response:
        # Cheap liveness + readiness: the process answers and the vault is still mounted.
        ok = os.path.isdir(vault.root) and os.access(vault.root, os.R_OK | os.X_OK)
        return JSONResponse({"status": "ok" if ok else "vault unavailable"}, status_code=200 if ok else 503)

    return mcp


def create_app(config: Config, vault: Vault | None = None) -> Starlette:
    """The ASGI app: MCP streamable HTTP at /mcp (stateless, JSON responses) plus /healthz."""
    mcp = create_server(config, vault)
    # Stateless + JSON responses: every POST is self-contained, so agentgateway can
    # multiplex and retry freely and no per-client session state lives here.
    return mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=config.transport_security(),
        host=config.host,
    )


def main() -> None:
    import uvicorn

    config = Config.from_env()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.log_level != "DEBUG":
        # In stateless mode the SDK logs "Terminating session: None" at INFO for every request.
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    try:
        vault = Vault(config.root, config.limits)
    except ValueError as exc:
        raise SystemExit(f"notes-vault: {exc} (set NOTES_VAULT_ROOT)") from None
    app = create_app(config, vault)
    logging.getLogger("notes_vault").info(
        "serving vault %s on http://%s:%d%s", vault.root, config.host, config.port, MCP_PATH
    )
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
