"""What the real components accept for the values mcpgate generates, written down once.

A generated value that a component refuses takes the stack down at start (Authelia exits on a bad
``key_id``), so each rule here is the component's own, with its source, and every generator is
tested against it over many draws. The secrets catalogue (:mod:`mcpgate.secret_catalogue`) names the
rule of each value, and :func:`mcpgate.secrets.generated_value_problems` applies them to a stack's
actual values before anything is deployed.

Example::

    authelia_key_id_problem("_oCjJafm")   # "... must start and end with a letter or digit ..."
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import uuid
from typing import TYPE_CHECKING

import cryptography
from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .memo import passed_before, record_pass

if TYPE_CHECKING:
    from .model import Stack

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
# RFC 7518 section 3.3: "A key of size 2048 bits or larger MUST be used" with RS256.
RSA_MIN_BITS = 2048
# One PEM block and nothing else: Go's pem.Decode (Authelia) would skip stray text, so a file that
# holds some is damaged, not usable.
_PEM_PRIVATE_KEY = re.compile(
    r"^-----BEGIN (RSA )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END (RSA )?PRIVATE KEY-----\r?\n?$"
)
# Digests in the form mcpgate writes them (authelia's crypt formats): the alphabet is checked here
# because argon2's own parser counts stray characters as hash bytes.
_PBKDF2_SHA512 = re.compile(r"^\$pbkdf2-sha512\$([1-9][0-9]*)\$([A-Za-z0-9./]+)\$([A-Za-z0-9./]+)$")
_ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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


# Rules for values as the secrets store holds them. Each returns what is wrong in a few words (never
# the value), or None.


def alnum_problem(value: str, length: int) -> str | None:
    """``length`` ASCII letters and digits, as :func:`mcpgate.secret_crypto.random_string` makes them."""
    expected = f"expected {length} ASCII letters and digits"
    if not value:
        return f"empty, {expected}"
    if not value.isascii() or not value.isalnum():
        return f"holds other characters (a space or line break counts), {expected}"
    if len(value) != length:
        return f"{len(value)} characters long, {expected}"
    return None


def hex_key_problem(value: str) -> str | None:
    if gateway_session_key_problem(value) is None:
        return None
    return "empty, expected 64 lower-case hex digits (a 32-byte key)" if not value else "not 64 lower-case hex digits"


def totp_seed_form_problem(seed: str, chars: int) -> str | None:
    """Base32 (RFC 4648, upper case, unpadded) of exactly ``chars`` characters, the length generated."""
    if not seed:
        return f"empty, expected {chars} base32 characters (A-Z, 2-7)"
    problem = totp_seed_problem(seed)
    if problem:
        return problem
    if len(seed) != chars:
        return f"{len(seed)} characters long, expected {chars} base32 characters (A-Z, 2-7)"
    return None


# What cryptography's key check is: its version names it (see mcpgate/memo.py).
_KEY_CHECK = f"rsa-key:1:{cryptography.__version__}"


@functools.lru_cache(maxsize=16)
def load_private_key(pem: str) -> serialization.PrivateKeyTypes:
    """The parsed key (cached: parsing checks an RSA key's math, ~0.15 s, and a deploy needs the
    signing key several times). The math of a key that passed that check before, byte for byte, is
    not checked again (mcpgate/memo.py). Raises cryptography's errors, see :func:`rsa_private_key_problem`."""
    data = pem.encode()
    if passed_before(_KEY_CHECK, data):
        return serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    key = serialization.load_pem_private_key(data, password=None)
    record_pass(_KEY_CHECK, data)
    return key


@functools.lru_cache(maxsize=16)
def rsa_private_key_problem(pem: str, min_bits: int = RSA_MIN_BITS) -> str | None:
    """One unencrypted PEM private key, RSA of at least ``min_bits`` bits (Authelia signs RS256)."""
    if not pem.strip():
        return "empty, expected a PEM RSA private key"
    try:
        key = load_private_key(pem)
    except TypeError:  # cryptography's answer to an encrypted key without a password
        return "the key is encrypted with a passphrase; Authelia needs it unencrypted"
    except (ValueError, UnsupportedAlgorithm):
        return "not a PEM private key that parses (truncated or damaged)"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "not an RSA key; RS256 tokens need one"
    if key.key_size < min_bits:
        return f"an RSA key of {key.key_size} bits; RS256 needs at least {min_bits}"
    if not _PEM_PRIVATE_KEY.match(pem):
        return "holds text besides its one PEM block"
    return None


def pbkdf2_sha512_digest_problem(digest: str, salt_bytes: int = 16, key_bytes: int = 64) -> str | None:
    """``$pbkdf2-sha512$<iterations>$<salt>$<key>``, salt and key in crypt's adapted base64."""
    form = "expected $pbkdf2-sha512$<iterations>$<salt>$<key>"
    m = _PBKDF2_SHA512.match(digest)
    if not m:
        return f"not a pbkdf2-sha512 digest, {form}"
    try:
        salt, key = (base64.b64decode(p + "=" * (-len(p) % 4), altchars=b"./", validate=True) for p in m.group(2, 3))
    except (binascii.Error, ValueError):
        return f"its salt or key is not adapted base64, {form}"
    if len(salt) != salt_bytes or len(key) != key_bytes:
        return f"its salt or key has the wrong length, expected {salt_bytes} and {key_bytes} bytes"
    return None


def argon2id_digest_problem(digest: str, salt_bytes: int = 16, hash_bytes: int = 32) -> str | None:
    """``$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`` as argon2-cffi (and Authelia) parse it."""
    form = "expected $argon2id$v=19$m=<kib>,t=<passes>,p=<lanes>$<salt>$<hash>"
    if not _ARGON2ID.match(digest):
        return f"not an argon2id digest, {form}"
    try:
        params = extract_parameters(digest)
    except InvalidHashError:
        return f"not an argon2id digest, {form}"
    if params.type is not Type.ID or params.salt_len != salt_bytes or params.hash_len != hash_bytes:
        return f"its salt or hash has the wrong length, expected {salt_bytes} and {hash_bytes} bytes"
    return None


def canonical_uuid_problem(value: str) -> str | None:
    # What str(uuid.uuid4()) gives and `authelia storage user identifiers add` takes.
    return None if _UUID.match(value) else "not a UUID in canonical form (8-4-4-4-12 lower-case hex digits)"


def supplied_token_problem(value: str) -> str | None:
    """A token a person gives (backend token, Tailscale auth key): it goes into an HTTP header or a
    file as it is, surrounding whitespace removed."""
    value = value.strip()
    if not value:
        return "empty"
    if any(not ("!" <= ch <= "~") for ch in value):
        return "holds spaces, control characters or non-ASCII characters, which an HTTP header cannot carry"
    return None


def supplied_secret_problem(value: str) -> str | None:
    """Any secret a person gives, as the store keeps it; its use may ask for more
    (:func:`supplied_value_problem`)."""
    if not value.strip():
        return "empty"
    if "\0" in value:
        return "holds a NUL byte"
    return None


def supplied_value_problem(stack: Stack, name: str, value: str) -> str | None:
    """What the use of the secret ``name`` asks of its value: a token the gateway sends and the
    Tailscale key go into an HTTP header or a command's file as they are; a backend's variable is one
    line of an env file; a backend's secret file may hold anything (a PEM key, a JSON credential)."""
    if name in stack.token_secrets or (stack.tailscale.enabled and name == stack.tailscale.auth_key_secret):
        return supplied_token_problem(value)
    env_names = {s.name for b in stack.backends for s in b.secrets if s.env}
    if name in env_names and ("\n" in value.strip() or "\r" in value.strip()):
        return "holds a line break, and a backend takes it in a variable (one line of an env file)"
    return supplied_secret_problem(value)
