"""The record of passed checks (mcpgate/memo.py): it only ever spares a check of the very input that
passed it, and a failing input is checked every time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mcpgate import accepted_values, memo
from mcpgate.validate import _schema_errors


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MCPGATE_NO_MEMO", raising=False)
    accepted_values.load_private_key.cache_clear()
    accepted_values.rsa_private_key_problem.cache_clear()
    return tmp_path / "cache" / "mcpgate"


def test_a_pass_is_remembered_for_that_input_and_check_only(own_cache: Path) -> None:
    assert not memo.passed_before("c:1", b"a", b"b")
    memo.record_pass("c:1", b"a", b"b")
    assert memo.passed_before("c:1", b"a", b"b")
    assert not memo.passed_before("c:1", b"ab", b"")  # the parts do not run together
    assert not memo.passed_before("c:1", b"a", b"c")
    assert not memo.passed_before("c:2", b"a", b"b")  # another version of the check
    assert own_cache.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 and p.stat().st_size == 0 for p in own_cache.iterdir())


def test_a_folder_others_can_write_is_not_trusted(own_cache: Path) -> None:
    memo.record_pass("c:1", b"a")
    os.chmod(own_cache, 0o777)
    try:
        assert not memo.passed_before("c:1", b"a")
    finally:
        os.chmod(own_cache, 0o700)
    assert memo.passed_before("c:1", b"a")


def test_it_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    memo.record_pass("c:1", b"a")
    monkeypatch.setenv("MCPGATE_NO_MEMO", "1")
    assert not memo.passed_before("c:1", b"a")


def _pem(key: rsa.RSAPrivateKey) -> str:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def test_a_key_that_passed_parses_to_the_same_key_again(own_cache: Path) -> None:
    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    first = accepted_values.load_private_key(pem)
    assert len(list(own_cache.iterdir())) == 1
    accepted_values.load_private_key.cache_clear()
    again = accepted_values.load_private_key(pem)  # the memo's path: its math not checked again
    assert again.private_numbers() == first.private_numbers()


def test_a_key_with_broken_math_is_refused_every_time(own_cache: Path) -> None:
    good = rsa.generate_private_key(public_exponent=65537, key_size=3072).private_numbers()
    # d off by two: the PEM parses, only the key check can tell.
    broken = rsa.RSAPrivateNumbers(
        good.p, good.q, good.d + 2, good.dmp1, good.dmq1, good.iqmp, good.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    pem = _pem(broken)
    for _ in range(2):
        accepted_values.load_private_key.cache_clear()
        accepted_values.rsa_private_key_problem.cache_clear()
        problem = accepted_values.rsa_private_key_problem(pem)
        assert problem == "not a PEM private key that parses (truncated or damaged)"
    assert not own_cache.exists() or not list(own_cache.iterdir())


def test_a_document_that_fails_its_schema_fails_every_time(own_cache: Path) -> None:
    schema = {"type": "object", "properties": {"port": {"type": "integer"}}}
    for _ in range(2):
        assert _schema_errors(schema, {"port": "x"}, "doc") == ["doc: port: 'x' is not of type 'integer'"]
    assert _schema_errors(schema, {"port": 1}, "doc") == []
    assert len(list(own_cache.iterdir())) == 1
    assert _schema_errors(schema, {"port": 1}, "doc") == []  # the memo's answer
    assert _schema_errors(schema, {"port": "1"}, "doc") != []  # another document: validated
