"""What Authelia's consent page says about the inventory's scopes: a locale file it serves instead of its own.

Authelia's portal (4.39) lists each requested scope as ``t("scopes.<name>")`` in its ``consent``
namespace (i18next; web/src/views/ConsentPortal/OpenIDConnect/DecisionFormScopes.tsx).

- A scope named without a colon (``notes.read``) is looked up in that namespace, so the list shows
  the text this file gives it: the inventory's description.
- For a name with a colon (``notes:read``) i18next takes the part before the colon as a namespace
  (``scopes.notes``) and the rest as the key (``Translator.extractFromKey``: the portal sets no
  ``nsSeparator``, so ``:`` is one). The portal loads only its ``consent``, ``portal`` and
  ``settings`` namespaces (``ns`` in web/src/i18n/index.ts; nothing calls ``loadNamespaces``), and
  Authelia serves locale files only for namespaces of letters (``{namespace:[a-z]+}`` in
  internal/server/handlers.go), so no file can ever hold that translation: i18next shows the key,
  "read". For these names the sentence above the list says what the list calls each one and what
  it allows (the inventory's description).

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
    """The sentence above the list: each of the server's scopes the list cannot name (a colon in its
    name), as listed, with its description; upstream's own sentence when the list names them all."""
    parts = [
        f"“{listed_as(name)}” ({name}): {description.strip().rstrip('.')}."
        for name, description in stack.scopes.items()
        if listed_as(name) != name
    ]
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
