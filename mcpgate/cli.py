"""The ``mcpgate`` command: render, check, and the secrets a person needs.

Exit codes: 0 success; 2 a mistake in the input, the secrets store or a path (one line on stderr
naming the path, the problem and the fix; never a traceback, never a secret value); 1 stdout closed
early (``mcpgate check ... | head``, quietly) or anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from .audit import (
    authelia_events,
    check_filters,
    format_json,
    format_table,
    gateway_events,
    journal_messages,
    log_begins,
    parse_since,
    select,
)
from .backup_plan import backup_items, not_backed_up
from .cli_secrets import (
    cmd_secrets_rollover,
    cmd_secrets_rotate,
    cmd_secrets_set,
    cmd_secrets_show,
    one_host,
    store_for,
)
from .errors import MCPGateError
from .hostops.inventory_file import HostStack, default_secrets_dir, load_inventory
from .identity import subjects
from .layout import container_name
from .model import Stack, pin_warnings
from .policy import format_matrix
from .render import Rendered, render_stack
from .render_out import open_out, write_tree
from .secret_store import SecretStore, file_in_the_way
from .secrets import ROTATABLE, StackSecrets, generated_value_problems
from .validate import reference_dir, validate_rendered


def _render_host(hs: HostStack, secrets_dir: Path | None, read_only: bool = False) -> tuple[Rendered, StackSecrets]:
    secrets = StackSecrets(store_for(hs, secrets_dir, read_only), hs.stack)
    return render_stack(hs.stack, secrets, inventory=hs.inventory, host=hs.host), secrets


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    # Everything is rendered before --out is touched: a mistake leaves no folder behind.
    hosts = [(hs, _render_host(hs, args.secrets)[0]) for hs in load_inventory(args.inventory, args.host)]
    try:
        with open_out(out) as out_fd:
            for hs, rendered in hosts:
                write_tree(out_fd, hs.host, rendered)
                root = out / hs.host
                print(
                    f"{hs.host}: {len(rendered.files)} files in {root} (base folder on the host: {hs.stack.base_dir})"
                )
    except OSError as err:
        where = Path(err.filename) if err.filename else out
        blocker = file_in_the_way(where) if isinstance(err, (NotADirectoryError, FileExistsError)) else None
        problem = f"{blocker} is a file, not a folder" if blocker else f"cannot write {where}: {err.strerror or err}"
        raise MCPGateError(f"--out {out}: {problem}; give --out a folder you can write to") from None
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    ref = reference_dir()
    failed = False
    for hs in load_inventory(args.inventory, args.host):
        # Read-only: a secret the store lacks is made up in memory for the check and never written.
        rendered, secrets = _render_host(hs, args.secrets, read_only=True)
        problems = generated_value_problems(secrets) + validate_rendered(rendered, ref)
        print(f"== {hs.host}: {hs.stack.resource}")
        print(f"   issuer {hs.stack.issuer}; {len(hs.stack.enabled_backends)} enabled backend(s)")
        if ref is None:
            print("   schemas: upstream reference folder not found (set MCPGATE_REFERENCE_DIR); schema checks skipped")
        else:
            print(f"   schemas: checked against {ref}")
        if problems:
            failed = True
            print("   rendered configs have problems:", file=sys.stderr)
            for p in problems:
                print(f"     - {p}", file=sys.stderr)
        else:
            print("   rendered configs: ok")
        for warning in pin_warnings(hs.stack.images):
            print(f"   warning: {warning}")
        for line in backup_summary(hs.stack):
            print(f"   {line}")
        print()
        print(format_matrix(hs.stack, subjects(hs.stack, secrets)))
        print()
    return 2 if failed else 0


def backup_summary(stack: Stack) -> list[str]:
    """What the host holds that the secrets store does not, and whether backups keep it."""
    items = [i.label for i in backup_items(stack)]
    if stack.backup is None:
        return [
            "backups: none. The host holds what the secrets store does not, and a rebuild loses it: "
            + ", ".join(items),
            '  set "backup": {"repository": ...} (README: "Backups and restore")',
        ]
    b = stack.backup
    keep = ", ".join(f"{n} {k}" for k, n in b.keep.model_dump().items() if n)
    return [
        f"backups: restic to {b.repository}, {b.schedule} (keeping {keep}); each snapshot holds:",
        *(f"  {i}" for i in [*items, "Authelia's database, copied with SQLite's online backup"]),
        "  not backed up: " + "; ".join(not_backed_up(stack)),
        "  the secrets store is the other half of a restore: keep a copy of it apart from the host",
    ]


def cmd_describe(args: argparse.Namespace) -> int:
    """The validated stack of each host as JSON (no secret in it): for scripts and the host checks."""
    out = [
        {"host": hs.host, "inventory": hs.inventory, "mcpgate": hs.stack.model_dump(mode="json")}
        for hs in load_inventory(args.inventory, args.host)
    ]
    print(json.dumps(out, indent=2))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Who used which tool through which client, and who failed to sign in, from the host's logs."""
    hs = one_host(args)
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    check_filters(hs.stack, args.person, args.client)
    people = audit_people(hs, store_for(hs, args.secrets, read_only=True))
    logs = read_service_logs(hs, since)
    events = gateway_events(logs["agentgateway"], hs.stack, people) + authelia_events(logs["authelia"], hs.stack)
    chosen = select(events, since=since, person=args.person, client=args.client, refused=args.refused)
    print(format_json(chosen) if args.json else format_table(chosen))
    for service, label in (("agentgateway", "the gateway's"), ("authelia", "Authelia's")):
        begins = log_begins(logs.get(f"{service}:first", []))
        if begins is not None and (since is None or since < begins):
            # The trail is no longer than the logs the host kept: say where it starts.
            print(
                f"mcpgate: {label} log on {hs.host} begins {begins:%Y-%m-%d %H:%M:%S} UTC; nothing older is "
                "kept (README: The audit trail)",
                file=sys.stderr,
            )
    return 0


def audit_people(hs: HostStack, store: SecretStore) -> dict[str, str]:
    """sub -> person, from the subjects the store holds (the deploy pins them in Authelia); one the
    inventory no longer lists keeps their name, so their past calls still read as theirs."""
    current = {u.name for u in hs.stack.users}
    people = {}
    for item in store.names():
        if item.startswith("users/") and item.endswith(".sub"):
            name, sub = item.removeprefix("users/").removesuffix(".sub"), store.get(item)
            if sub:
                people[sub.strip()] = name if name in current else f"{name} (no longer in the inventory)"
    return people


def read_service_logs(hs: HostStack, since: datetime | None) -> dict[str, list[str]]:
    """The log lines of the stack's gateway and Authelia, read on the host over the deploy's connection."""
    from shlex import quote

    from .hostops.host_read import HostReader

    reader = HostReader(hs.inventory, hs.host)
    journal = hs.stack.audit.logs == "journald"
    try:
        out = {}
        for service in ("agentgateway", "authelia"):
            name = container_name(hs.stack.name, service)
            if journal:
                # Every container of that name the journal kept (recreated ones too), not only today's.
                window = f"--since @{int(since.timestamp())} " if since is not None else ""
                read = f"journalctl -q --no-pager -o json CONTAINER_NAME={quote(name)}"
                command = f"{read} | head -n 1; {read} {window}"
            else:
                window = f"--since {quote(since.isoformat())} " if since is not None else ""
                command = (
                    f"if ! docker container inspect {quote(name)} >/dev/null 2>&1; then "
                    f"echo 'no container {name} on the host (deploy first)' >&2; exit 1; fi; "
                    f"docker logs {quote(name)} 2>&1 | head -n 1; docker logs {window}{quote(name)} 2>&1"
                )
            # The log's first line (how far back it goes), then the window asked for.
            first, *lines = reader.run(command, f"the logs of {name}").splitlines() or [""]
            if journal:
                first, lines = next(iter(journal_messages([first])), ""), journal_messages(lines)
            out[service], out[f"{service}:first"] = lines, [first]
        return out
    finally:
        reader.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcpgate", description="Self-hosted MCP servers behind Tailscale Funnel, Authelia and agentgateway."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, host_required: bool = False) -> None:
        p.add_argument("inventory", help="pyinfra inventory file, e.g. inventory/home.py")
        p.add_argument("--host", required=host_required, help="only this inventory host")
        p.add_argument(
            "--secrets",
            type=Path,
            default=None,
            help=f"secrets store folder (default: $MCPGATE_SECRETS_DIR or {default_secrets_dir()})",
        )

    p = sub.add_parser("render", help="write the files the deploy would place on each host")
    common(p)
    p.add_argument("--out", required=True, help="output folder; files go to OUT/<host>/<path under base_dir>")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("check", help="validate the inventory and rendered configs, print the tool x scope policy")
    common(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("describe", help="print each host's validated stack as JSON (no secrets)")
    common(p)
    p.set_defaults(func=cmd_describe)

    sp = sub.add_parser("secrets", help="the secrets store").add_subparsers(dest="secrets_command", required=True)
    p = sp.add_parser("show", help="what to paste into Claude.ai, and each user's password and TOTP URI")
    common(p)
    p.set_defaults(func=cmd_secrets_show)
    p = sp.add_parser("set", help="store a secret you supply (backend token, Tailscale auth key) from stdin")
    common(p)
    p.add_argument("name", help="the secret's name, as the inventory gives it (token_secret, auth_key_secret)")
    p.set_defaults(func=cmd_secrets_set)
    p = sp.add_parser(
        "rotate",
        help=f"replace a secret: {', '.join(ROTATABLE)}, client/<id> (a leaked client secret), "
        "totp/<user> (a lost authenticator), password/<user> (a forgotten password)",
    )
    common(p)
    p.add_argument("name", help=f"{', '.join(sorted(ROTATABLE))}, client/<client id>, totp/<user> or password/<user>")
    p.set_defaults(func=cmd_secrets_rotate)
    p = sp.add_parser(
        "rollover",
        help="replace the token signing key without breaking live tokens: start (new key signs, the old one still "
        "verifies), deploy; finish (old key dropped) once its tokens expired, deploy",
    )
    common(p)
    p.add_argument("step", choices=["start", "finish"])
    p.set_defaults(func=cmd_secrets_rollover)

    p = sub.add_parser(
        "audit",
        help="who called which tool through which client, what was refused, and failed sign-ins "
        "(read from the host's logs over the deploy's connection)",
    )
    common(p)
    p.add_argument("--since", help="only events since then: an age (30m, 2h, 7d) or a UTC date/time (2026-12-07T05:00)")
    p.add_argument("--person", help="only this person (the inventory's user name)")
    p.add_argument("--client", help="only this OAuth client (its id in the inventory)")
    p.add_argument("--refused", action="store_true", help="only refused tool calls, failed sign-ins and bans")
    p.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    p.set_defaults(func=cmd_audit)
    return parser


def _stdout_gone() -> int:
    """stdout's reader went away (``mcpgate check ... | head``): as Python's signal docs advise, point
    stdout at devnull so the interpreter's last flush cannot fail again, and leave quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a descriptor (tests): nothing left to flush
        pass
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except MCPGateError as err:
        print(f"mcpgate: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # A path the person gave or the machine's state (permissions, a full disk): say which file and
        # why. OSError's text names files only, never their contents.
        where = f"{err.filename}: " if err.filename else ""
        print(f"mcpgate: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
