"""What the real components accept for the values mcpgate generates, written down once.

A generated value that a component refuses takes the stack down at start (Authelia exits on a bad
``key_id``), so each rule here is the component's own, with its source, and every generator is
tested against it over many draws. :func:`generated_value_problems` applies them to a stack's
actual values before anything is deployed.

Example::

    authelia_key_id_problem("_oCjJafm")   # "... must start and end with a letter or digit ..."
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .secrets import StackSecrets

# authelia/authelia v4.39.20 internal/configuration/validator/const.go: reOpenIDConnectKID, and
# identity_providers.go: "option `key_id` must be 100 characters or less".
AUTHELIA_KEY_ID = re.compile(r"^([a-zA-Z0-9](([a-zA-Z0-9._~-]*)([a-zA-Z0-9]))?)?$")
AUTHELIA_KEY_ID_MAX = 100
# Authelia's storage encryption key: at least 20 characters (validator/storage.go).
AUTHELIA_STORAGE_KEY_MIN = 20
# TOTP seeds: base32 without padding (authelia totp/totp.go decodes with NoPadding); authenticator
# apps read the same text from the otpauth:// URI (RFC 4648 alphabet A-Z 2-7). RFC 4226 section 4
# asks for at least 128 bits of shared secret.
TOTP_MIN_BYTES = 16
# Values that end up in a config line, an HTTP form or a header as they are: printable ASCII with no
# space, quote or backslash (redis.conf `requirepass`, client_secret_post, Bearer tokens).
_PLAIN_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
# agentgateway's session key: 32 bytes for AES-256-GCM, hex-encoded.
_GATEWAY_SESSION_KEY = re.compile(r"^[0-9a-f]{64}$")


def authelia_key_id_problem(kid: str) -> str | None:
    if len(kid) > AUTHELIA_KEY_ID_MAX:
        return f"key id {kid!r} is longer than Authelia's {AUTHELIA_KEY_ID_MAX} characters"
    if not kid or not AUTHELIA_KEY_ID.match(kid):
        return (
            f"key id {kid!r} is refused by Authelia: RFC 3986 unreserved characters only, and it must "
            "start and end with a letter or digit"
        )
    return None


def totp_seed_problem(seed: str) -> str | None:
    try:
        raw = base64.b32decode(seed, casefold=False)
    except (binascii.Error, ValueError):
        return "TOTP seed is not unpadded upper-case base32"
    if "=" in seed or len(raw) < TOTP_MIN_BYTES:
        return f"TOTP seed must be unpadded base32 of at least {TOTP_MIN_BYTES} bytes"
    return None


def plain_token_problem(value: str, what: str, min_length: int = 16) -> str | None:
    if len(value) < min_length:
        return f"{what} is shorter than {min_length} characters"
    if not _PLAIN_TOKEN.match(value):
        return f"{what} holds characters that a config line or an HTTP form would mangle"
    return None


def subject_problem(value: str) -> str | None:
    # `authelia storage user identifiers add --identifier` takes a UUID.
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return f"subject {value!r} is not a UUID"
    return None if str(parsed) == value else f"subject {value!r} is not in canonical UUID form"


def gateway_session_key_problem(value: str) -> str | None:
    return None if _GATEWAY_SESSION_KEY.match(value) else "agentgateway session key must be 64 hex digits (32 bytes)"


def generated_value_problems(secrets: StackSecrets) -> list[str]:
    """Every generated value of a stack checked against the component that parses it. Messages name
    the value, never print a secret."""
    stack = secrets.stack
    found: list[tuple[str, str | None]] = [
        ("authelia signing key id", authelia_key_id_problem(secrets.oidc_key_id())),
        ("authelia session secret", plain_token_problem(secrets.session_secret(), "the value")),
        (
            "authelia storage encryption key",
            plain_token_problem(secrets.storage_encryption_key(), "the value", AUTHELIA_STORAGE_KEY_MIN),
        ),
        ("authelia OIDC HMAC secret", plain_token_problem(secrets.oidc_hmac_secret(), "the value")),
        ("authelia reset-password JWT secret", plain_token_problem(secrets.reset_password_jwt_secret(), "the value")),
        ("redis password", plain_token_problem(secrets.redis_password(), "the value")),
        ("agentgateway session key", gateway_session_key_problem(secrets.gateway_session_key())),
    ]
    for client in stack.clients:
        if not client.public:
            found.append((f"client {client.id} secret", plain_token_problem(secrets.client_secret(client.id), "it")))
    for user in stack.users:
        found.append((f"user {user.name} password", plain_token_problem(secrets.user_password(user.name), "it", 12)))
        found.append((f"user {user.name} TOTP seed", totp_seed_problem(secrets.user_totp_seed(user.name))))
        found.append((f"user {user.name} subject", subject_problem(secrets.user_subject(user.name))))
    return [f"{name}: {problem}" for name, problem in found if problem]
