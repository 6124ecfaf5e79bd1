"""What Authelia's consent page says about the inventory's scopes: a locale file it serves instead of its own.

Authelia's portal (4.39) lists each requested scope as ``t("scopes.<name>")`` in its ``consent``
namespace (i18next). For a name with a colon, i18next reads the part before the colon as a namespace
("scopes.notes" for ``notes:read``), finds nothing there and shows what follows the colon: the person
sees "read", not what ``notes:read`` allows. No locale file can change that line. So the file mcpgate
renders (served from ``server.asset_path``, which replaces Authelia's English ``consent.json`` whole)
does two things:

- the sentence above the list says, for every scope of this server, what the list will call it and
  what it allows (the inventory's description);
- a scope named without a colon is translated on the list itself (``scopes.<name>``).

Every key of upstream's file that is not the same text as its key is given here too (the portal shows
a missing key as the key itself, and falls back to its own texts for the standard scopes and claims).
"""

from __future__ import annotations

import json

from .model import Stack

# The key of the sentence above the scope list; its value is followed by ":" on the page.
HEADING_KEY = "The above application is requesting the following permissions"
# Upstream's keys whose text differs from the key (interpolated by i18next).
_TEMPLATED = {
    "Claim": "Claim {{name}}",
    "Client ID": "Client ID: {{client_id}}",
    "Scope": "Scope {{name}}",
}


def listed_as(scope: str) -> str:
    """What the portal's scope list shows for ``scope`` when no translation applies to it: for
    ``a:b:c`` i18next takes ``a`` as the namespace and ``b.c`` as the key, and shows the key."""
    if ":" not in scope:
        return scope
    return ".".join(scope.split(":")[1:])


def heading(stack: Stack) -> str:
    """The sentence above the list: each of the server's scopes, as listed, with its description."""
    parts = []
    for name, description in stack.scopes.items():
        label = listed_as(name)
        shown = f"“{label}” ({name})" if label != name else f"“{name}”"
        parts.append(f"{shown}: {description.strip().rstrip('.')}.")
    if not parts:
        return HEADING_KEY
    return (
        f"The application above asks for the permissions listed below. On {stack.hostname} they mean: "
        + " ".join(parts)
        + " It asks for"
    )


def consent_locale(stack: Stack) -> str:
    """The English ``consent.json`` Authelia serves in place of its own: deterministic JSON."""
    data: dict[str, object] = dict(_TEMPLATED)
    data[HEADING_KEY] = heading(stack)
    plain = {name: description.strip() for name, description in stack.scopes.items() if ":" not in name}
    if plain:
        data["scopes"] = plain
    return json.dumps(data, indent="\t", sort_keys=True, ensure_ascii=False) + "\n"
