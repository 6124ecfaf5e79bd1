"""Authelia's users database: Authelia's own state, which the deploy only merges the inventory into.

A person changes their password in Authelia's portal, and Authelia writes the new digest into its
users file. So the file lives in Authelia's data volume (with its database, and in the same backup)
and the deploy never renders it whole: it reads the file from the host and merges the inventory in.

- a person the file lacks is added, with the argon2id digest of the initial password in the
  secrets store (``mcpgate secrets show`` prints it);
- a person the inventory no longer lists is removed;
- for everyone else only what the inventory says is set (``displayname``, ``email``, ``groups``);
  their ``password`` and every other attribute Authelia keeps stay as they are;
- except after an operator's reset (``mcpgate secrets rotate INV password/<user>``, a new initial
  password in the store): that person's password becomes the new initial one, once. The deploy knows
  a reset from the initial password it last applied for each person (a fingerprint of its digest,
  kept in a marker beside the file): a different one is a reset, an unknown person (a host deployed
  before the marker existed) is only recorded.

Authelia writes the file in its own layout (every attribute, empty ones included) and the deploy in
a short one, so the two are compared by meaning, never by bytes: a file Authelia rewrote after a
password change is unchanged for the deploy.

Example::

    merged = merge_users(text_on_host, desired_users(stack, secrets))
    merged.content   # None when the host's file already says what the inventory does
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import MCPGateError
from .model import Stack
from .secrets import StackSecrets

# What the inventory decides for each person; everything else in an entry is Authelia's.
MANAGED = ("displayname", "email", "groups")
HEADER = (
    "# Authelia's users database. The deploy adds and removes people and sets their displayname,\n"
    "# email and groups from the inventory; passwords are Authelia's (a person changes theirs in the\n"
    "# portal). Written by mcpgate and by Authelia.\n"
)


def desired_users(stack: Stack, secrets: StackSecrets) -> dict[str, dict[str, Any]]:
    """user -> the entry the inventory gives them, with the digest of their initial password (used
    only when the file lacks them)."""
    return {
        u.name: {
            "displayname": u.display_name,
            "email": u.email,
            "groups": list(u.groups),
            "password": secrets.user_password_hash(u.name),
        }
        for u in stack.users
    }


@dataclass(frozen=True)
class MergedUsers:
    content: bytes | None  # the file to write; None when the host's file needs no change
    applied: str  # the marker: each person's initial password last applied (fingerprints, JSON)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # displayname, email or groups changed
    reset: list[str] = field(default_factory=list)  # the operator gave them a new initial password


def initial_fingerprint(digest: str) -> str:
    """Which initial password a person was last given, without the digest itself."""
    return hashlib.sha256(digest.encode()).hexdigest()[:32]


def parse_applied(text: str) -> dict[str, str]:
    """The marker's user -> fingerprint; a damaged or absent marker knows nobody (nobody is reset)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def parse_users(text: str, where: str = "Authelia's users database") -> dict[str, dict[str, Any]]:
    """The users of a users file ('' or an absent file: none). A file that does not parse is an
    error: rewriting it would lose the passwords people chose."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise MCPGateError(
            f"{where} is not valid YAML{at}; the deploy will not overwrite it (it holds the passwords people "
            "chose): repair it, or restore it from your backup of Authelia's data volume"
        ) from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(isinstance(v, dict) for v in users.values()):
        raise MCPGateError(
            f"{where} has no 'users' mapping of people; the deploy will not overwrite it (it holds the "
            "passwords people chose): repair it, or restore it from your backup of Authelia's data volume"
        )
    return {str(k): v for k, v in users.items()}


def _meaning(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as Authelia reads it: empty attributes are absent (Authelia writes them all)."""
    return {k: v for k, v in entry.items() if v not in (None, "", [], {}, False) or k in MANAGED}


def _managed(entry: dict[str, Any]) -> dict[str, Any]:
    return {"displayname": entry.get("displayname") or "", "email": entry.get("email") or "",
            "groups": list(entry.get("groups") or [])}  # fmt: skip


def merge_users(
    text: str, desired: dict[str, dict[str, Any]], applied: str = "", where: str = "Authelia's users database"
) -> MergedUsers:
    """The host's users file (``text``) with the inventory's people merged in, given the marker of
    the initial passwords last applied (``applied``; see the module)."""
    current = parse_users(text, where)
    given = parse_applied(applied)
    merged: dict[str, dict[str, Any]] = {}
    added, updated, reset = [], [], []
    for name, want in desired.items():
        have = current.get(name)
        initial = {"password": want["password"]}
        if have is None:
            added.append(name)
            merged[name] = {**_managed(want), **initial}
            continue
        if _managed(have) != _managed(want):
            updated.append(name)
        # Authelia's attributes (the password above all) are kept; the inventory's set.
        merged[name] = {**_meaning(have), **_managed(want)}
        if name in given and given[name] != initial_fingerprint(want["password"]):
            reset.append(name)
            merged[name].update(initial)
    removed = [name for name in current if name not in desired]
    marker = json.dumps({n: initial_fingerprint(w["password"]) for n, w in desired.items()}, sort_keys=True)
    same = {n: {**_meaning(e), **_managed(e)} for n, e in current.items()} == merged
    if same and text.strip():
        return MergedUsers(None, marker)
    body = yaml.safe_dump({"users": merged}, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return MergedUsers((HEADER + body).encode(), marker, added, removed, updated, reset)
