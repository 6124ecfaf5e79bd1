"""Generated values against the rules of the components that parse them, over many draws: a rule a
value breaks one time in sixteen is invisible to a test that draws once."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from joserfc.jwk import RSAKey

from mcpgate.accepted_values import (
    authelia_key_id_problem,
    plain_token_problem,
    subject_problem,
    totp_seed_problem,
)
from mcpgate.secret_crypto import generate_totp_seed, key_id_for, key_id_from_thumbprint, random_string
from mcpgate.secret_store import SecretStore
from mcpgate.secrets import StackSecrets, generated_value_problems

DRAWS = 20_000


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "kid",
    [
        "_oCjJafmpTUkGPimu8pM09vITcr3tdma8wVQop6rUu4",  # refused by the real Authelia (issue 8)
        "_LglFayndi_zFhRJh5Zu984w9kV5BnenPeGti5Ze-Wc",
        "abc-",
        "a" * 101,
        "",
        "a b",
    ],
)
def test_authelia_refuses_these_key_ids(kid: str) -> None:
    assert authelia_key_id_problem(kid)


@pytest.mark.parametrize("kid", ["a", "a-b", "k1.2~3_x", "0" * 100])
def test_authelia_accepts_these_key_ids(kid: str) -> None:
    assert authelia_key_id_problem(kid) is None


def test_the_key_id_is_valid_for_every_thumbprint() -> None:
    """The kid depends on the key only through its SHA-256 thumbprint: every 32-byte digest is a
    possible one. The base64url form breaks Authelia's rule for some of them; the hex form for none."""
    base64_refused = 0
    for _ in range(DRAWS):
        thumbprint = _b64url(os.urandom(32))
        base64_refused += authelia_key_id_problem(thumbprint) is not None
        kid = key_id_from_thumbprint(thumbprint)
        assert authelia_key_id_problem(kid) is None, kid
        assert len(kid) == 64
    # about 1 in 32 (a first character '-' or '_'; the last of 43 carries 4 bits and is never one):
    # the rule the old kid broke is real
    assert DRAWS * 0.02 < base64_refused < DRAWS * 0.045


def test_real_keys_get_valid_stable_key_ids() -> None:
    for _ in range(3):
        key = RSAKey.generate_key(2048)
        pem = key.as_pem(private=True).decode()
        kid = key_id_for(pem)
        assert authelia_key_id_problem(kid) is None
        assert kid == key_id_for(pem)
        assert bytes.fromhex(kid) == base64.urlsafe_b64decode(key.thumbprint() + "=")


def test_generated_secrets_fit_their_components() -> None:
    for _ in range(DRAWS // 10):
        assert plain_token_problem(random_string(), "secret") is None
        assert plain_token_problem(random_string(24), "password", 12) is None
        assert totp_seed_problem(generate_totp_seed()) is None
        assert subject_problem(str(uuid.uuid4())) is None


@pytest.mark.parametrize("seed", ["abc", "MFRGG===", "MFRGGZDFMZTWQ2LK", "not base32!"])
def test_bad_totp_seeds_are_refused(seed: str) -> None:
    # lower case, padded, too short (10 bytes), not base32
    assert totp_seed_problem(seed)


def test_a_fresh_store_has_no_problem_and_a_damaged_one_is_named_without_its_value(
    secrets: StackSecrets, store: SecretStore
) -> None:
    assert generated_value_problems(secrets) == []
    store.set("users/alice.totp", "secret-seed with spaces")
    store.set("redis/password", "pass word 'quoted'")
    problems = generated_value_problems(secrets)
    assert any(p.startswith("user alice TOTP seed:") for p in problems)
    assert any(p.startswith("redis password:") for p in problems)
    assert not any("secret-seed" in p or "quoted" in p for p in problems)
