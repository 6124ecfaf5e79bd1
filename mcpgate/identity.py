"""Identity state Authelia keeps in its database, pinned from the secrets store.

Each user's TOTP seed and OIDC subject are imported with ``authelia storage user totp import`` and
``authelia storage user identifiers import`` from files, so a rebuilt host keeps every
authenticator app and every token's ``sub``, and no secret is ever on a command line.
"""

from __future__ import annotations

import yaml

from .model import Stack
from .secrets import StackSecrets

TOTP_ALGORITHM = "SHA1"
TOTP_DIGITS = 6
TOTP_PERIOD = 30
# A fixed creation time keeps the rendered import files byte-identical between runs.
CREATED_AT = "2025-01-01T00:00:00Z"


def totp_yaml(stack: Stack, secrets: StackSecrets) -> str:
    entries = [
        {
            "created_at": CREATED_AT,
            "username": u.name,
            "issuer": stack.hostname,
            "algorithm": TOTP_ALGORITHM,
            "digits": TOTP_DIGITS,
            "period": TOTP_PERIOD,
            "secret": secrets.user_totp_seed(u.name),
        }
        for u in stack.users
    ]
    return yaml.safe_dump({"totp_configurations": entries}, sort_keys=False)


def identifiers_yaml(stack: Stack, secrets: StackSecrets) -> str:
    entries = [
        {"identifier": secrets.user_subject(u.name), "service": "openid", "sector_id": "", "username": u.name}
        for u in stack.users
    ]
    return yaml.safe_dump({"identifiers": entries}, sort_keys=False)


def otpauth_uri(stack: Stack, secrets: StackSecrets, user: str) -> str:
    """The URI an authenticator app scans (same parameters as the imported configuration)."""
    import pyotp

    totp = pyotp.TOTP(secrets.user_totp_seed(user), digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    return totp.provisioning_uri(name=user, issuer_name=stack.hostname)
