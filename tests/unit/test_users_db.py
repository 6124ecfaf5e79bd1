"""Authelia's users database merged with the inventory: people added and removed, their names, e-mails
and groups set, and a password a person chose never touched."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from mcpgate.errors import MCPGateError
from mcpgate.users_db import initial_fingerprint, merge_users

INITIAL = "$argon2id$v=19$m=65536,t=3,p=4$aW5pdGlhbA$aW5pdGlhbC1kaWdlc3Q"
CHOSEN = "$argon2id$v=19$m=65536,t=3,p=4$Y2hvc2Vu$Y2hvc2VuLWJ5LWFsaWNl"


def _want(**people: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = {"displayname": "", "email": "", "groups": [], "password": INITIAL}
    return {name: {**base, **entry} for name, entry in people.items()}


ALICE = {"displayname": "Alice", "email": "alice@example.org", "groups": ["admins"]}
BOB = {"displayname": "Bob", "email": "bob@example.org", "groups": ["family"]}

# The file as Authelia 4.39.20 writes it after a person changed their password (FileDatabaseModel.Write:
# every attribute, empty ones included).
AUTHELIA_WROTE = f"""users:
    alice:
        password: {CHOSEN}
        displayname: Alice
        email: alice@example.org
        groups:
            - admins
        given_name: ""
        middle_name: ""
        family_name: ""
        nickname: ""
        gender: ""
        birthdate: ""
        website: ""
        profile: ""
        picture: ""
        zoneinfo: ""
        locale: ""
        phone_number: ""
        phone_extension: ""
        disabled: false
        address: null
        extra: {{}}
"""


def _users(content: bytes | None) -> dict[str, Any]:
    assert content is not None
    return yaml.safe_load(content)["users"]


def test_a_new_host_gets_everyone_with_their_initial_password() -> None:
    merged = merge_users("", _want(alice=ALICE, bob=BOB))
    assert merged.added == ["alice", "bob"] and not merged.removed and not merged.updated
    users = _users(merged.content)
    assert users["alice"] == {**ALICE, "password": INITIAL}
    assert list(users) == ["alice", "bob"]


def test_merging_again_changes_nothing() -> None:
    first = merge_users("", _want(alice=ALICE, bob=BOB)).content
    assert first is not None
    assert merge_users(first.decode(), _want(alice=ALICE, bob=BOB)).content is None


def test_a_password_the_person_changed_is_kept_and_authelias_layout_is_no_change() -> None:
    assert merge_users(AUTHELIA_WROTE, _want(alice=ALICE)).content is None


def test_a_new_person_is_added_and_the_others_password_stays() -> None:
    merged = merge_users(AUTHELIA_WROTE, _want(alice=ALICE, bob=BOB))
    assert merged.added == ["bob"]
    users = _users(merged.content)
    assert users["alice"]["password"] == CHOSEN
    assert users["bob"]["password"] == INITIAL


def test_a_removed_person_goes() -> None:
    merged = merge_users(merge_users("", _want(alice=ALICE, bob=BOB)).content.decode(), _want(alice=ALICE))
    assert merged.removed == ["bob"]
    assert list(_users(merged.content)) == ["alice"]


def test_names_emails_and_groups_follow_the_inventory_and_authelias_attributes_stay() -> None:
    text = AUTHELIA_WROTE.replace('nickname: ""', "nickname: Al").replace("disabled: false", "disabled: true")
    merged = merge_users(text, _want(alice={**ALICE, "groups": ["family"], "email": "a@example.org"}))
    assert merged.updated == ["alice"]
    alice = _users(merged.content)["alice"]
    assert alice["groups"] == ["family"] and alice["email"] == "a@example.org"
    # Authelia's own: the chosen password, and what an operator set by hand (a disabled account).
    assert alice["password"] == CHOSEN and alice["nickname"] == "Al" and alice["disabled"] is True
    assert "given_name" not in alice  # empty attributes mean the same absent


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("users: [alice\n", "is not valid YAML (line 2)"),
        ("- alice\n", "has no 'users' mapping of people"),
        ("users:\n  alice: yes\n", "has no 'users' mapping of people"),
    ],
)
def test_a_damaged_file_is_never_overwritten(text: str, problem: str) -> None:
    with pytest.raises(MCPGateError) as err:
        merge_users(text, _want(alice=ALICE), where="users.yml in volume v")
    assert f"users.yml in volume v {problem}" in str(err.value)
    assert "the deploy will not overwrite it" in str(err.value)


# --- an operator's reset: a new initial password in the store, applied once ---------------------

NEW_INITIAL = "$argon2id$v=19$m=65536,t=3,p=4$cmVzZXQ$bmV3LWluaXRpYWwtZGlnZXN0"


def test_the_marker_records_each_persons_initial_password() -> None:
    merged = merge_users("", _want(alice=ALICE))
    assert json.loads(merged.applied) == {"alice": initial_fingerprint(INITIAL)}
    assert INITIAL not in merged.applied  # a fingerprint, not the digest


def test_a_reset_sets_the_new_initial_password_once_and_keeps_the_rest() -> None:
    applied = merge_users("", _want(alice=ALICE)).applied
    want = _want(alice=ALICE)
    want["alice"]["password"] = NEW_INITIAL
    merged = merge_users(AUTHELIA_WROTE, want, applied)
    assert merged.reset == ["alice"] and not merged.updated
    alice = _users(merged.content)["alice"]
    assert alice["password"] == NEW_INITIAL and alice["displayname"] == "Alice"
    # Applied: the next run changes nothing, and a password the person chooses after is theirs.
    assert merge_users(merged.content.decode(), want, merged.applied).content is None
    chosen_again = AUTHELIA_WROTE  # alice chose a password again: Authelia wrote the file
    assert merge_users(chosen_again, want, merged.applied).content is None
    assert merged.applied != applied


def test_a_person_the_marker_does_not_know_is_recorded_not_reset() -> None:
    # A host deployed before the marker existed, or a lost marker: nobody's chosen password is lost.
    merged = merge_users(AUTHELIA_WROTE, _want(alice=ALICE), applied="")
    assert merged.content is None and merged.reset == []
    assert json.loads(merged.applied) == {"alice": initial_fingerprint(INITIAL)}
    assert merge_users(AUTHELIA_WROTE, _want(alice=ALICE), applied="not json").content is None
