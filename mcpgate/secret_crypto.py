"""How mcpgate makes each kind of secret value, and the digests and key ids derived from them.

Generators here are the only ones: the secrets catalogue (:mod:`mcpgate.secret_catalogue`) names
which one makes each file of the store. The forms they make are checked by
:mod:`mcpgate.accepted_values`, over many draws in the tests.

Example::

    random_string(24)                       # 24 ASCII letters and digits
    key_id_for(generate_rsa_pem())           # 64 hex digits, stable for the key
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets as pysecrets
import string
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from .accepted_values import load_private_key

RSA_KEY_BITS = 3072
PBKDF2_ITERATIONS = 310_000  # Authelia's default for pbkdf2-sha512
TOTP_SEED_BYTES = 40
TOTP_SEED_CHARS = len(base64.b32encode(bytes(TOTP_SEED_BYTES)))  # 64, no padding
SECRET_CHARS = 64  # Authelia's secrets and client secrets
REDIS_PASSWORD_CHARS = 48
USER_PASSWORD_CHARS = 24
GATEWAY_SESSION_KEY_BYTES = 32  # AES-256-GCM
_ALNUM = string.ascii_letters + string.digits


def random_string(length: int = SECRET_CHARS) -> str:
    """A random alphanumeric string: safe in YAML, URLs, env files and HTTP forms."""
    return "".join(pysecrets.choice(_ALNUM) for _ in range(length))


def _ab64(data: bytes) -> str:
    """The 'adapted base64' of crypt(3)-style digests: '+' becomes '.', no padding."""
    return base64.b64encode(data).decode().rstrip("=").replace("+", ".")


def _ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def pbkdf2_sha512_digest(secret: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``$pbkdf2-sha512$<iterations>$<salt>$<key>``, the form Authelia stores client secrets in."""
    salt = salt if salt is not None else os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$pbkdf2-sha512${iterations}${_ab64(salt)}${_ab64(key)}"


def pbkdf2_sha512_verify(secret: str, digest: str) -> bool:
    try:
        _, algo, iterations, salt, key = digest.split("$")
        if algo != "pbkdf2-sha512":
            return False
        expected = hashlib.pbkdf2_hmac("sha512", secret.encode(), _ab64_decode(salt), int(iterations))
        return hmac.compare_digest(expected, _ab64_decode(key))
    except (ValueError, TypeError):
        return False


# Authelia's argon2id defaults, in its configuration's words: the users' digests are made with
# these and its configuration (password: argon2:) names the same.
ARGON2 = {"iterations": 3, "memory": 65536, "parallelism": 4, "key_length": 32, "salt_length": 16}
_argon2 = PasswordHasher(
    time_cost=ARGON2["iterations"],
    memory_cost=ARGON2["memory"],
    parallelism=ARGON2["parallelism"],
    hash_len=ARGON2["key_length"],
    salt_len=ARGON2["salt_length"],
)


def argon2id_hash(password: str) -> str:
    return _argon2.hash(password)


def argon2id_verify(password: str, digest: str) -> bool:
    try:
        return _argon2.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.lru_cache(maxsize=16)
def key_id_for(pem: str) -> str:
    """The RFC 7638 SHA-256 thumbprint of a key, hex-encoded.

    Not the usual base64url form: that starts with '-' or '_' for about one key in 32,
    and Authelia refuses such a key_id (it must start and end with a letter or digit) and never
    starts. Hex is always 64 characters of 0-9a-f.
    """
    return key_id_from_thumbprint(_jwk(pem).thumbprint())


@functools.lru_cache(maxsize=16)
def _jwk(pem: str) -> RSAKey:
    return RSAKey.import_key(load_private_key(pem))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def public_jwk(pem: str) -> tuple[tuple[str, str], ...]:
    """The public JWK Authelia serves for this private key (cached: parsing a key takes ~0.2 s)."""
    public = _jwk(pem).as_dict(private=False)
    return (("use", "sig"), ("kty", "RSA"), ("kid", key_id_for(pem)), ("alg", "RS256"),
            ("n", public["n"]), ("e", public["e"]))  # fmt: skip


def key_id_from_thumbprint(thumbprint: str) -> str:
    """Hex of a base64url RFC 7638 thumbprint."""
    return base64.urlsafe_b64decode(thumbprint + "=" * (-len(thumbprint) % 4)).hex()


def generate_rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def generate_totp_seed() -> str:
    # 40 random bytes encode to exactly 64 base32 characters, no padding.
    return base64.b32encode(os.urandom(TOTP_SEED_BYTES)).decode()


def generate_hex_key() -> str:
    """A 32-byte key, hex-encoded (agentgateway's session key)."""
    return os.urandom(GATEWAY_SESSION_KEY_BYTES).hex()


def generate_subject() -> str:
    """A person's OIDC subject: a random UUID in canonical form."""
    return str(uuid.uuid4())
