"""Checks on rendered configs: they parse, agree with each other, and (where the upstream JSON
schemas are at hand) validate against Authelia's and agentgateway's schemas.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .checkout import PROJECT_ROOT
from .layout import AGENTGATEWAY, AUTH_PREFIX, AUTHELIA, AUTHELIA_SECRET_ENV, AUTHELIA_USERS
from .memo import passed_before, record_pass
from .model import AUTHELIA_DISCOVERY_SCOPES
from .rendered import Rendered
from .users_db import merge_users

_SECRET_FILTER = re.compile(
    r"""\{\{\s*secret\s+"(?P<path>[^"]+)"\s*(?:\|\s*mindent\s+(?P<indent>\d+)\s+"\|"\s*)?(?:\|\s*msquote\s*)?\}\}"""
)


# libyaml's safe loader where PyYAML has it: the same documents, a tenth of the pure-Python parser's time.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str | bytes) -> Any:
    return yaml.load(text, Loader=_SafeLoader)


def reference_dir() -> Path | None:
    """The upstream schemas: MCPGATE_REFERENCE_DIR, or shared/reference beside the checkout or one of
    the folders above it (a CI clone may sit deeper than the working checkout)."""
    env = os.environ.get("MCPGATE_REFERENCE_DIR")
    candidates = [Path(env)] if env else [p / "shared" / "reference" for p in PROJECT_ROOT.parents]
    for c in candidates:
        if (c / "authelia-4.39").is_dir() and (c / "agentgateway-1.4").is_dir():
            return c
    return None


def expand_authelia_templates(text: str, files: dict[str, str]) -> str:
    """Do what Authelia's template filter does with ``{{ secret "path" | mindent N "|" | msquote }}``."""

    def sub(m: re.Match[str]) -> str:
        path = m.group("path")
        if path not in files:
            raise ValueError(f"template reads {path}, which the deploy does not place in the container")
        value = files[path]
        if m.group("indent"):
            pad = " " * int(m.group("indent"))
            body = "\n".join(pad + line if line else line for line in value.rstrip("\n").split("\n"))
            return "|\n" + body
        return value

    return _SECRET_FILTER.sub(sub, text)


def authelia_config(rendered: Rendered) -> dict[str, Any]:
    """The Authelia configuration as Authelia sees it once its template filter has run."""
    secrets_dir = AUTHELIA.host_dir("secrets") + "/"
    in_container = {
        AUTHELIA.container_file("secrets", f.path.removeprefix(secrets_dir)): f.content.decode()
        for f in rendered.files
        if f.path.startswith(secrets_dir)
    }
    text = rendered.config("authelia").content.decode()
    return _load_yaml(expand_authelia_templates(text, in_container))


def _schema_errors(schema: dict[str, Any], doc: Any, what: str) -> list[str]:
    # A document that passed this schema before is not validated again (mcpgate/memo.py): importing
    # jsonschema and walking Authelia's schema is a third of `mcpgate check`.
    check = f"schema:1:{importlib.metadata.version('jsonschema')}"
    parts = (json.dumps(schema, sort_keys=True).encode(), json.dumps(doc, sort_keys=True, default=repr).encode())
    if passed_before(check, *parts):
        return []
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = [
        f"{what}: {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if not errors:
        record_pass(check, *parts)
    return errors


def authelia_schema(ref: Path, custom_scopes: list[str]) -> dict[str, Any]:
    """Authelia's schema, widened as its validator is: scopes declared under oidc.scopes are allowed."""
    schema = json.loads((ref / "authelia-4.39" / "configuration.schema.json").read_text())
    enum = schema["$defs"]["IdentityProvidersOpenIDConnectClient"]["properties"]["scopes"]["items"]["enum"]
    enum.extend(s for s in custom_scopes if s not in enum)
    return schema


def validate_rendered(rendered: Rendered, ref: Path | None = None) -> list[str]:
    """Problems with the rendered files; an empty list when all is well."""
    problems: list[str] = []
    docs: dict[str, Any] = {}
    authelia_path = rendered.config("authelia").path
    for f in rendered.files:
        if f.path.endswith((".yml", ".yaml")) and not f.path.startswith("build/"):
            try:
                docs[f.path] = authelia_config(rendered) if f.path == authelia_path else _load_yaml(f.content)
            except (yaml.YAMLError, ValueError) as err:
                problems.append(f"{f.path}: does not parse: {err}")
    if problems:
        return problems

    authelia = docs[authelia_path]
    # The users database a new host starts with (the deploy merges the same entries into an existing one).
    users = _load_yaml(merge_users("", rendered.authelia_users).content or b"")
    gateway = docs[rendered.config(AGENTGATEWAY.service).path]

    stack = rendered.stack
    if ref is not None:
        problems += _schema_errors(authelia_schema(ref, list(stack.scopes)), authelia, "authelia configuration")
        user_schema = json.loads((ref / "authelia-4.39" / "user-database.schema.json").read_text())
        problems += _schema_errors(user_schema, users, "authelia users")
        gw_schema = json.loads((ref / "agentgateway-1.4" / "config.schema.json").read_text())
        problems += _schema_errors(gw_schema, gateway, "agentgateway config")
    try:
        problems += _cross_checks(rendered, authelia, users, gateway)
    except (KeyError, IndexError, TypeError) as err:
        problems.append(f"rendered configs do not have the expected shape: missing {err}")
    return problems


def _cross_checks(rendered: Rendered, authelia: Any, users: Any, gateway: Any) -> list[str]:
    """The facts every config must agree on."""
    stack = rendered.stack
    problems: list[str] = []
    cookie = authelia["session"]["cookies"][0]
    if cookie["authelia_url"] != stack.issuer:
        problems.append(f"authelia authelia_url {cookie['authelia_url']} != issuer {stack.issuer}")
    if not authelia["server"]["address"].endswith(AUTH_PREFIX):
        problems.append(f"authelia is not served under {AUTH_PREFIX}")
    route = gateway["binds"][0]["listeners"][0]["routes"][0]
    authn = route["policies"]["mcpAuthentication"]
    if authn["issuer"] != stack.issuer:
        problems.append(f"agentgateway issuer {authn['issuer']} != {stack.issuer}")
    if authn["audiences"] != [stack.resource]:
        problems.append(f"agentgateway audiences {authn['audiences']} != [{stack.resource}]")
    oidc = authelia["identity_providers"]["oidc"]
    for client in oidc["clients"]:
        if client.get("audience") != [stack.resource]:
            problems.append(f"client {client['client_id']}: audience must be [{stack.resource}]")
        if client.get("access_token_signed_response_alg") != "RS256":
            problems.append(f"client {client['client_id']}: access tokens would be opaque")
        undeclared = set(client["scopes"]) - set(oidc.get("scopes", {})) - set(AUTHELIA_DISCOVERY_SCOPES)
        if undeclared:
            problems.append(f"client {client['client_id']}: scopes {sorted(undeclared)} are not declared")
    for name in AUTHELIA_SECRET_ENV:
        for value in _walk(authelia):
            if isinstance(value, str) and value and value == _secret_value(rendered, name):
                problems.append(f"authelia configuration carries the {name} inline")
    if set(users["users"]) != {u.name for u in stack.users}:
        problems.append(f"{AUTHELIA_USERS} would not list exactly the inventory's users")
    return problems


def _secret_value(rendered: Rendered, name: str) -> str | None:
    try:
        return rendered.file(AUTHELIA.host_file("secrets", name)).content.decode()
    except KeyError:
        return None


def _walk(node: Any):
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
    else:
        yield node
