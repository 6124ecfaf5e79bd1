"""Field types of the inventory model: names, ids, uid:gid pairs and the values a backend is given.

Each type is an ``Annotated`` str, list or dict whose validator raises ``ValueError`` with the
message a person sees next to the field (see :func:`~mcpgate.model.load_stack`). Most are a
:class:`Pattern`: a regular expression and what to say when a value does not match it.

Example::

    class User(Strict):
        name: UserName          # "Alice Smith" -> "user name 'Alice Smith' must match ..."
        groups: GroupNames
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

from .strict import raise_all


class Pattern:
    """A check that a string matches ``regex``. ``message`` says what is wrong with a value that
    does not: a ``str.format`` template of ``{value}`` and ``{pattern}``, or a function of the value.

    As an ``AfterValidator`` it raises ValueError(message); :meth:`problem` returns the message
    instead, for checks that collect every problem before they raise.
    """

    def __init__(self, regex: str, message: str | Callable[[str], str]) -> None:
        self.regex = re.compile(regex)
        self._message = message

    @property
    def pattern(self) -> str:
        return self.regex.pattern

    def matches(self, value: str) -> bool:
        # re.match: each regex spells out its own ^...$, the form the messages show.
        return self.regex.match(value) is not None

    def problem(self, value: str) -> str | None:
        if self.matches(value):
            return None
        if callable(self._message):
            return self._message(value)
        return self._message.format(value=value, pattern=self.pattern)

    def __call__(self, value: str) -> str:
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def each(self, values: list[str]) -> list[str]:
        """The list-level check: the first bad item names the list field, not the item's index."""
        for value in values:
            self(value)
        return values


def env_var_for(name: str) -> str:
    """The upper-case variable name suggested for ``name`` ("calendar-api-key" -> "CALENDAR_API_KEY")."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


# --- people and clients --------------------------------------------------------------------------

_USER_NAME = Pattern(
    r"^[a-z][a-z0-9._-]{0,31}$", "user name {value!r} must match {pattern} (lower case, starts with a letter)"
)
UserName = Annotated[str, AfterValidator(_USER_NAME)]

# Also checked on the keys of Stack.groups, as a collected problem.
GROUP_NAME = Pattern(r"^[a-z][a-z0-9._-]{0,63}$", "group name {value!r} must match {pattern}")
GroupNames = Annotated[list[str], AfterValidator(GROUP_NAME.each)]

_EMAIL = Pattern(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "{value!r} is not an e-mail address")
Email = Annotated[str, AfterValidator(_EMAIL)]


def _client_id_message(value: str) -> str:
    suggestion = re.sub(r"[^a-z0-9._-]+", "-", value.lower()).strip("-._")
    example = f"e.g. {suggestion!r}" if _CLIENT_ID.matches(suggestion) else "e.g. 'claude-ai'"
    return (
        f"client id {value!r} must be 3-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter "
        f"or digit (it is the OAuth client_id and names the client's secret in the store): {example}"
    )


# A client id also names the client's secret in the store (clients/<id>.secret), whose names are
# lower case: an id the store cannot hold would fail later, far from the inventory.
_CLIENT_ID = Pattern(r"^[a-z0-9][a-z0-9._-]{2,63}$", _client_id_message)
ClientId = Annotated[str, AfterValidator(_CLIENT_ID)]


# --- scopes --------------------------------------------------------------------------------------

# Scopes Authelia defines itself; an inventory may not redeclare them as custom scopes.
STANDARD_SCOPES = frozenset(
    {"openid", "offline_access", "profile", "email", "address", "phone", "groups", "authelia.bearer.authz"}
)
# Without a colon ("notes.read") the consent page lists a scope by its description; with one
# ("notes:read") only by what follows the colon, explained above the list (mcpgate/consent.py).
_SCOPE_NAME = Pattern(
    r"^[a-z][a-z0-9_.-]*(?::[a-z0-9_.-]+)*$",
    "scope {value!r} must look like 'notes.read' (or 'notes:read') ({pattern})",
)


def _scope_descriptions(scopes: dict[str, str]) -> dict[str, str]:
    for name, description in scopes.items():
        if name in STANDARD_SCOPES:
            raise ValueError(f"scope {name!r} is a standard OpenID scope; custom scopes need their own name")
        _SCOPE_NAME(name)
        if not description.strip():
            raise ValueError(f"scope {name!r} needs a description (users see it on the consent screen)")
        # The consent page's texts go through i18next, which would replace these.
        for token in ("{{", "}}", "$t("):
            if token in description:
                raise ValueError(
                    f"scope {name!r}: its description may not contain {token!r} "
                    "(the consent page would not show it as written)"
                )
    return scopes


# scope name -> the description users see on the consent screen.
ScopeDescriptions = Annotated[dict[str, str], AfterValidator(_scope_descriptions)]


# --- the stack and its backends ------------------------------------------------------------------

# A DNS label short enough to prefix container, network and volume names.
_SERVICE_NAME = r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$"
_STACK_NAME = Pattern(
    _SERVICE_NAME, "name {value!r} must match {pattern}: it prefixes container, network and volume names"
)
StackName = Annotated[str, AfterValidator(_STACK_NAME)]

# Names the stack's own containers answer to on the private network.
RESERVED_SERVICE_NAMES = frozenset({"redis", "authelia", "agentgateway", "ingress", "mcpgate"})
_BACKEND_NAME = Pattern(_SERVICE_NAME, "backend name {value!r} must match {pattern} (a DNS label, lower case)")


def _backend_name(value: str) -> str:
    if "_" in value:
        raise ValueError(
            f"backend name {value!r} contains '_': agentgateway exposes tools as <target>_<tool> and splits "
            "at the first '_'; use '-' instead"
        )
    _BACKEND_NAME(value)
    if value in RESERVED_SERVICE_NAMES:
        raise ValueError(f"backend name {value!r} is taken by the stack itself; choose another name")
    return value


BackendName = Annotated[str, AfterValidator(_backend_name)]

_BUILD_FOLDER = Pattern(
    r"^[a-z0-9][a-z0-9_.-]*$", "build {value!r} must be the name of a folder under files/, e.g. notes-vault"
)
BuildFolder = Annotated[str, AfterValidator(_BUILD_FOLDER)]
_MEMORY = Pattern(r"^[1-9]\d*[kmg]$", "memory limit {value!r} must look like 256m or 2g")
Memory = Annotated[str, AfterValidator(_MEMORY)]


def _url_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError(f"path {value!r} must start with '/'")
    return value


# The path of a backend's MCP endpoint on its container.
UrlPath = Annotated[str, AfterValidator(_url_path)]


def _command(value: list[str]) -> list[str]:
    if not value or any(not a or "\0" in a for a in value):
        raise ValueError('command must be a non-empty list of non-empty arguments, e.g. ["http", "--port", "8082"]')
    return value


Command = Annotated[list[str], AfterValidator(_command)]

_TOOL_NAME = Pattern(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", "tool name {value!r} is invalid")


def _tools(tools: dict[str, list[str]]) -> dict[str, list[str]]:
    if not tools:
        raise ValueError("tools is empty: list each tool under the scope it needs, or set scope")
    seen: dict[str, str] = {}
    for scope, names in tools.items():
        if not names:
            raise ValueError(f"scope {scope!r} lists no tools")
        for tool in names:
            _TOOL_NAME(tool)
            if tool in seen:
                where = "twice" if seen[tool] == scope else f"under both {seen[tool]!r} and {scope!r}"
                raise ValueError(f"tool {tool!r} is listed {where}; give each tool one scope")
            seen[tool] = scope
    return tools


# scope -> the tools needing it; each tool under one scope.
Tools = Annotated[dict[str, list[str]], AfterValidator(_tools)]


# --- environment variables and secrets -----------------------------------------------------------

_ENV_NAME = Pattern(
    r"^[A-Za-z_][A-Za-z0-9_]*$", "environment variable name {value!r} is invalid (letters, digits and '_')"
)
# Words that make an environment variable's name look like it holds a secret.
_SECRET_ENV_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY")


def _secret_looking(key: str, value: str) -> str | None:
    """What to say when the variable ``key`` looks like it carries a secret in plain sight."""
    words = [w for w in _SECRET_ENV_WORDS if w in key.upper()]
    # Where a secret file is (GITHUB_APP_PRIVATE_KEY_PATH=/run/secrets/app.pem) is no secret.
    names_a_path = key.upper().endswith(("_PATH", "_FILE")) and value.startswith("/")
    if not words or names_a_path:
        return None
    name = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "my-secret"
    return (
        f"{key!r} looks like a secret (its name contains {words[0]}): env values sit in the "
        "container's spec for anyone who can run `docker inspect`; store it with `mcpgate secrets set "
        f'INVENTORY {name}` and declare it under secrets: [{{"name": "{name}", "env": "{key.upper()}"}}]'
    )


def _env_vars(env: dict[str, str]) -> dict[str, str]:
    problems = [p for key, value in env.items() if (p := _ENV_NAME.problem(key) or _secret_looking(key, value))]
    raise_all(problems)
    return env


# A backend's plain environment: every bad name reported at once.
EnvVars = Annotated[dict[str, str], AfterValidator(_env_vars)]

_SECRET_NAME = Pattern(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "secret name {value!r} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit "
    "(it names a file in the secrets store), e.g. 'calendar-api-key'",
)
# A secret a person supplies with `mcpgate secrets set INVENTORY <name>`.
SecretName = Annotated[str, AfterValidator(_SECRET_NAME)]

_SECRET_ENV_NAME = Pattern(
    r"^[A-Z_][A-Z0-9_]*$",
    lambda value: (
        f"environment variable name {value!r} must match [A-Z_][A-Z0-9_]* (upper case), e.g. {env_var_for(value)!r}"
    ),
)
# The variable a secret is passed in (upper case, unlike a plain env name).
EnvVarName = Annotated[str, AfterValidator(_SECRET_ENV_NAME)]


# --- uid:gid -------------------------------------------------------------------------------------

_UID_GID = Pattern(r"^\d{1,10}:\d{1,10}$", "{value!r} must be a numeric uid:gid, e.g. 10001:10001")
_MAX_ID = 4294967294  # 2**32 - 2: (uid_t)-1 means "no change" to chown


def split_uid(spec: str) -> tuple[int, int]:
    """The uid and gid of a checked "uid:gid"."""
    uid, gid = spec.split(":")
    return int(uid), int(gid)


def _uid_gid(value: str) -> str:
    _UID_GID(value)
    if max(split_uid(value)) > _MAX_ID:
        raise ValueError(f"{value!r}: a uid or gid is at most {_MAX_ID}")
    return value


def _service_uid_gid(value: str) -> str:
    _uid_gid(value)
    if 0 in split_uid(value):
        raise ValueError(
            f"{value!r} must be a numeric non-root uid:gid (neither 0: the service would own root's files), "
            "e.g. 10091:10091"
        )
    return value


UidGid = Annotated[str, AfterValidator(_uid_gid)]
ServiceUidGid = Annotated[str, AfterValidator(_service_uid_gid)]
