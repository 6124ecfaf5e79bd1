"""Identity state Authelia keeps in its database, pinned from the secrets store.

Each user's TOTP seed is imported with ``authelia storage user totp import FILE`` (an upsert), so
the seed never appears on a command line; each user's OIDC subject (a UUID, not a secret) is
pinned with ``authelia storage user identifiers add``. A rebuilt host keeps every authenticator
app and every token's ``sub``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import yaml

from .model import Stack
from .secrets import StackSecrets


@dataclass(frozen=True)
class TotpParameters:
    """One set for Authelia's configuration (totp:), the seeds it imports and the otpauth:// URI."""

    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30
    skew: int = 1  # codes of one period either side are accepted


TOTP = TotpParameters()
# A fixed creation time keeps the rendered import files byte-identical between runs.
CREATED_AT = "2025-01-01T00:00:00Z"


def totp_yaml(stack: Stack, secrets: StackSecrets) -> str:
    entries = [
        {
            "created_at": CREATED_AT,
            "last_used_at": None,
            "username": u.name,
            "issuer": stack.hostname,
            "algorithm": TOTP.algorithm,
            "digits": TOTP.digits,
            "period": TOTP.period,
            # Authelia stores the base32 text as bytes; its YAML carries them base64-encoded.
            "secret": base64.b64encode(secrets.user_totp_seed(u.name).encode()).decode(),
        }
        for u in stack.users
    ]
    return yaml.safe_dump({"totp_configurations": entries}, sort_keys=False)


def subjects(stack: Stack, secrets: StackSecrets) -> dict[str, str]:
    """user -> the ``sub`` Authelia must give them."""
    return {u.name: secrets.user_subject(u.name) for u in stack.users}


def parse_identifiers_export(text: str) -> dict[str, str]:
    """user -> openid identifier, from ``authelia storage user identifiers export``."""
    data = yaml.safe_load(text) or {}
    return {
        e["username"]: e["identifier"]
        for e in data.get("identifiers") or []
        if e.get("service") == "openid" and not e.get("sector_id")
    }


def otpauth_uri(stack: Stack, secrets: StackSecrets, user: str) -> str:
    """The URI an authenticator app scans (same parameters as the imported configuration)."""
    import pyotp

    totp = pyotp.TOTP(secrets.user_totp_seed(user), digits=TOTP.digits, interval=TOTP.period)
    return totp.provisioning_uri(name=user, issuer_name=stack.hostname)
