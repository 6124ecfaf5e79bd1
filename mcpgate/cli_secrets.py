"""The ``mcpgate secrets`` commands: what to give Claude and each person, a secret a person supplies,
a rotation and a signing-key rollover; and how every command opens a host's secrets store.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from .accepted_values import supplied_value_problem
from .errors import MCPGateError
from .hostops.inventory_file import HostStack, load_inventory
from .identity import otpauth_uri
from .secret_store import SecretStore
from .secrets import StackSecrets


def store_for(hs: HostStack, secrets_dir: Path | None, read_only: bool = False) -> SecretStore:
    store = hs.store(secrets_dir, read_only)
    store.inventory = hs.inventory  # the repair commands in its errors name this inventory
    return store


def one_host(args: argparse.Namespace) -> HostStack:
    hosts = load_inventory(args.inventory, args.host)
    if len(hosts) != 1:
        names = ", ".join(h.host for h in hosts)
        raise MCPGateError(f"the inventory has several hosts ({names}): choose one with --host")
    return hosts[0]


def show_command(hs: HostStack) -> str:
    return f"mcpgate secrets show {hs.inventory} --host {hs.host}"


def cmd_secrets_show(args: argparse.Namespace) -> int:
    # Every value is read (and checked) before anything is printed: a damaged store gives its one-line
    # error and no half of the listing.
    lines: list[str] = []
    for hs in load_inventory(args.inventory, args.host):
        stack = hs.stack
        secrets = StackSecrets(store_for(hs, args.secrets), stack)
        lines += [f"== {hs.host}", "", 'Claude.ai: Settings > Connectors > "Add custom connector"']
        lines.append(f"  Remote MCP server URL:  {stack.resource}")
        for client in stack.clients:
            lines += ["", f"  client {client.name}  (Advanced settings)", f"    OAuth Client ID:      {client.id}"]
            if client.public:
                lines.append("    OAuth Client Secret:  (none: public client, PKCE only)")
            else:
                lines.append(f"    OAuth Client Secret:  {secrets.client_secret(client.id)}")
                lines.append(f"    token auth method:    {client.auth_method}")
        lines += ["", f"Users (sign in at {stack.issuer}, password then TOTP):"]
        for user in stack.users:
            lines.append(f"  {user.name}")
            lines.append(f"    initial password:  {secrets.user_password(user.name)}")
            lines.append(
                f"    TOTP (scan or paste into an authenticator app): {otpauth_uri(stack, secrets, user.name)}"
            )
        lines.append("")
    print("\n".join(lines))
    return 0


def cmd_secrets_set(args: argparse.Namespace) -> int:
    hs = one_host(args)
    secrets = StackSecrets(store_for(hs, args.secrets), hs.stack)
    allowed = secrets.settable_names()
    if args.name not in allowed:
        raise MCPGateError(
            f"{args.name!r} is not a secret this inventory asks for; settable: {', '.join(allowed) or 'none'}"
        )
    try:
        # Bytes decoded strictly: the locale's decoder may smuggle undecodable bytes in as surrogates.
        value = (
            getpass.getpass(f"{args.name} for {hs.host}: ")
            if sys.stdin.isatty()
            else sys.stdin.buffer.read().decode("utf-8")
        )
    except EOFError:  # Ctrl-D at the prompt
        value = ""
    except UnicodeDecodeError:
        raise MCPGateError(f"the value given for {args.name!r} on stdin is not UTF-8 text") from None
    value = value.strip()
    if not value:
        raise MCPGateError(f"no value given for {args.name!r} (it is read from stdin, never from the command line)")
    problem = supplied_value_problem(hs.stack, args.name, value)
    if problem:  # what the store would refuse when the deploy reads it back
        raise MCPGateError(f"the value given for {args.name!r} {problem}; nothing was stored")
    secrets.store.set(f"tokens/{args.name}", value)
    print(f"{hs.host}: stored {args.name} in {secrets.store.root} (0600)")
    return 0


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    hs = one_host(args)
    secrets = StackSecrets(store_for(hs, args.secrets), hs.stack)
    item = secrets.rotate(args.name)
    print(f"{hs.host}: rotated {item.name}; the next deploy restarts {item.restarts}")
    if item.path.startswith("clients/"):
        print(f"  after the deploy, paste the new client secret ({show_command(hs)}) into the client's settings")
    elif item.path.endswith(".password"):
        print(f"  the deploy sets it as the person's password (even one they chose): tell them ({show_command(hs)})")
    elif item.path.startswith("users/"):
        print(f"  after the deploy, the person scans the new otpauth:// URI ({show_command(hs)}); the old codes stop")
    return 0


def cmd_secrets_rollover(args: argparse.Namespace) -> int:
    hs = one_host(args)
    secrets = StackSecrets(store_for(hs, args.secrets), hs.stack)
    lifespan = hs.stack.longest_access_token_lifespan
    if args.step == "start":
        old, new = secrets.rollover_start()
        print(f"{hs.host}: new signing key {new}; key {old} is retiring")
        print("  deploy now: Authelia signs with the new key, and Authelia and the gateway still accept tokens signed")
        print(f"  with the old one. Once every such token has expired (access tokens live {lifespan}), run")
        print(f"  mcpgate secrets rollover {hs.inventory} --host {hs.host} finish, and deploy again.")
    else:
        old = secrets.rollover_finish()
        print(f"{hs.host}: key {old} retired; the next deploy removes it from Authelia and the gateway")
        print(
            f"  (tokens it signed stop working then: refresh tokens are unaffected, clients refresh within {lifespan})"
        )
    return 0
