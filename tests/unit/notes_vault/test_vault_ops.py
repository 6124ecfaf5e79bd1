"""read / write / delete / search on the filesystem layer, including atomic writes and caps."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from notes_vault import vault as vault_mod
from notes_vault.vault import MAX_LINE_CHARS, Limits, Vault, VaultError

from ._util import all_files

# ----------------------------------------------------------------------- read


def test_read_returns_the_whole_note(vault: Vault) -> None:
    assert vault.read("Projects/mcpgate/Plan.md") == (
        "# Plan\n- tailscale funnel\n- caddy\n- Authelia OIDC\n- agentgateway\n"
    )


def test_read_accepts_uppercase_suffix(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "UPPER.MD").write_text("shout\n")
    assert vault.read("UPPER.MD") == "shout\n"


def test_read_keeps_unicode_and_crlf(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "Ünïcødé note.md").write_bytes("Grüße\r\n😀\r\n".encode())
    assert vault.read("Ünïcødé note.md") == "Grüße\r\n😀\r\n"


def test_read_missing_note(vault: Vault) -> None:
    with pytest.raises(VaultError, match="not found"):
        vault.read("Nope.md")
    with pytest.raises(VaultError, match="not found"):
        vault.read("No/Such/Folder.md")


def test_read_size_cap(vault_dir: Path) -> None:
    v = Vault(vault_dir, Limits(max_read_bytes=10))
    (vault_dir / "ten.md").write_text("0123456789")
    assert v.read("ten.md") == "0123456789"
    with pytest.raises(VaultError, match=r"is 51 bytes, larger than the read limit of 10 bytes"):
        v.read("Welcome.md")


def test_read_invalid_utf8(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "latin1.md").write_bytes("café".encode("latin-1"))
    with pytest.raises(VaultError, match="not valid UTF-8"):
        vault.read("latin1.md")


def test_read_unreadable_note(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: the tests may run as root, which ignores file modes.
    real_open = os.open

    def deny(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if path == "Welcome.md":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vault_mod.os, "open", deny)
    with pytest.raises(VaultError, match=r"permission denied for 'Welcome\.md'"):
        vault.read("Welcome.md")


# ---------------------------------------------------------------------- write


def test_write_creates_note_and_parent_folders(vault: Vault, vault_dir: Path, no_leftovers: None) -> None:
    out = vault.write("Inbox/2025/New idea.md", "# Idea\nbody\n")
    assert (out.path, out.bytes_written, out.created) == ("Inbox/2025/New idea.md", 12, True)
    assert (vault_dir / "Inbox" / "2025" / "New idea.md").read_text() == "# Idea\nbody\n"
    assert vault.read("Inbox/2025/New idea.md") == "# Idea\nbody\n"


def test_write_replaces_existing_note(vault: Vault, vault_dir: Path, no_leftovers: None) -> None:
    out = vault.write("Welcome.md", "replaced\n")
    assert not out.created
    assert (vault_dir / "Welcome.md").read_text() == "replaced\n"


def test_write_counts_utf8_bytes(vault: Vault) -> None:
    assert vault.write("u.md", "é😀").bytes_written == 6


def test_write_empty_note(vault: Vault, vault_dir: Path) -> None:
    vault.write("empty.md", "")
    assert (vault_dir / "empty.md").read_bytes() == b""


def test_write_overwrite_false(vault: Vault, vault_dir: Path, no_leftovers: None) -> None:
    with pytest.raises(VaultError, match="already exists"):
        vault.write("Welcome.md", "nope", overwrite=False)
    assert (vault_dir / "Welcome.md").read_text().startswith("# Welcome")
    assert vault.write("Fresh.md", "new", overwrite=False).created


def test_write_overwrite_false_loses_a_race_cleanly(
    vault: Vault, vault_dir: Path, monkeypatch: pytest.MonkeyPatch, no_leftovers: None
) -> None:
    """A note created between the existence check and the link() is not clobbered."""
    monkeypatch.setattr(Vault, "_check_target", staticmethod(lambda path, name, dir_fd, overwrite: True))
    (vault_dir / "Race.md").write_text("the other writer won\n")
    with pytest.raises(VaultError, match="already exists"):
        vault.write("Race.md", "mine", overwrite=False)
    assert (vault_dir / "Race.md").read_text() == "the other writer won\n"


def test_write_size_cap(vault_dir: Path, no_leftovers: None) -> None:
    v = Vault(vault_dir, Limits(max_write_bytes=8))
    v.write("ok.md", "12345678")
    with pytest.raises(VaultError, match="9 bytes, larger than the write limit of 8 bytes"):
        v.write("big.md", "123456789")
    with pytest.raises(VaultError, match="larger than the write limit"):
        v.write("ok.md", "éééé€")  # 11 bytes in UTF-8
    assert not (vault_dir / "big.md").exists()
    assert (vault_dir / "ok.md").read_text() == "12345678"


def test_write_refuses_nul_and_lone_surrogates(vault: Vault, vault_dir: Path) -> None:
    with pytest.raises(VaultError, match="NUL"):
        vault.write("x.md", "a\x00b")
    with pytest.raises(VaultError, match="UTF-8"):
        vault.write("x.md", "bad \ud800")
    with pytest.raises(VaultError, match="string"):
        vault.write("x.md", b"bytes")  # type: ignore[arg-type]
    assert not (vault_dir / "x.md").exists()


def test_write_new_file_mode(vault: Vault, vault_dir: Path) -> None:
    old = os.umask(0o022)
    try:
        vault.write("mode.md", "x")
    finally:
        os.umask(old)
    assert (vault_dir / "mode.md").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_write_is_atomic_on_failure(
    vault: Vault, vault_dir: Path, monkeypatch: pytest.MonkeyPatch, failing: str, no_leftovers: None
) -> None:
    """A failure at any step leaves the old note intact and no temp file behind."""
    original = (vault_dir / "Welcome.md").read_bytes()
    before = all_files(vault_dir)
    real_write = os.write

    def half_write(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    if failing == "write":
        monkeypatch.setattr(vault_mod.os, "write", half_write)
    elif failing == "fsync":
        monkeypatch.setattr(vault_mod.os, "fsync", boom)
    else:
        monkeypatch.setattr(vault_mod.os, "replace", boom)
    with pytest.raises(VaultError) as err:
        vault.write("Welcome.md", "NEW CONTENT " * 1000)
    monkeypatch.undo()
    assert (vault_dir / "Welcome.md").read_bytes() == original
    assert all_files(vault_dir) == before
    if failing == "write":
        assert "disk is full" in str(err.value)


def test_write_failure_for_a_new_note_leaves_nothing(
    vault: Vault, vault_dir: Path, monkeypatch: pytest.MonkeyPatch, no_leftovers: None
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(vault_mod.os, "fsync", boom)
    with pytest.raises(VaultError, match="Input/output error"):
        vault.write("Brand new.md", "content")
    monkeypatch.undo()
    assert not (vault_dir / "Brand new.md").exists()


def test_readers_never_see_a_partial_note(vault: Vault, vault_dir: Path, no_leftovers: None) -> None:
    """Concurrent writers replace a 200 KB note; every read is one whole version."""
    versions = {"A" * 200_000, "B" * 200_000}
    vault.write("Busy.md", "A" * 200_000)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(ch: str) -> None:
        try:
            for _ in range(40):
                vault.write("Busy.md", ch * 200_000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=writer, args=(c,)) for c in "AB"]
    for t in threads:
        t.start()
    reads = 0
    while not stop.is_set() or reads < 50:
        assert Vault(vault_dir, Limits(max_read_bytes=300_000)).read("Busy.md") in versions
        reads += 1
        if reads > 2000:
            break
    for t in threads:
        t.join()
    assert errors == []


# --------------------------------------------------------------------- delete


def test_delete_removes_one_note(vault: Vault, vault_dir: Path) -> None:
    assert vault.delete("Daily/2025-01-31.md") == "Daily/2025-01-31.md"
    assert not (vault_dir / "Daily" / "2025-01-31.md").exists()
    assert (vault_dir / "Daily").is_dir()  # folders are kept
    with pytest.raises(VaultError, match="not found"):
        vault.delete("Daily/2025-01-31.md")


def test_delete_missing_folder(vault: Vault) -> None:
    with pytest.raises(VaultError, match="not found"):
        vault.delete("Nowhere/x.md")


# --------------------------------------------------------------------- search


def test_search_is_case_insensitive_with_line_numbers(vault: Vault) -> None:
    out = vault.search("PineApple")
    assert out.matches == [
        ("Welcome.md", 2, "This vault has a Secret word: PINEAPPLE."),
        ("Daily/2025-01-31.md", 1, "Met Ärger about the pineapple pizza."),
    ]
    assert not out.truncated
    assert out.files_scanned == 3


def test_search_skips_hidden_non_markdown_and_outside(vault: Vault) -> None:
    paths = {p for p, _, _ in vault.search("pineapple", max_results=200).matches}
    assert paths == {"Welcome.md", "Daily/2025-01-31.md"}


def test_search_non_ascii_case_folding(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "de.md").write_text("STRASSE\nGROSSE ÄRGER\n")
    assert [m[1] for m in vault.search("ärger").matches if m[0] == "de.md"] == [2]
    assert [m[1] for m in vault.search("straße").matches if m[0] == "de.md"] == [1]


def test_search_does_not_follow_symlinks(vault: Vault, vault_dir: Path, outside_dir: Path) -> None:
    (vault_dir / "OutsideDir").symlink_to(outside_dir, target_is_directory=True)
    (vault_dir / "outside-link.md").symlink_to(outside_dir / "secret.md")
    (vault_dir / "Loop").symlink_to(vault_dir, target_is_directory=True)
    paths = {p for p, _, _ in vault.search("pineapple").matches}
    assert paths == {"Welcome.md", "Daily/2025-01-31.md"}


def test_search_in_folder(vault: Vault) -> None:
    out = vault.search("a", folder="Projects")
    assert {p for p, _, _ in out.matches} == {"Projects/mcpgate/Plan.md"}
    assert vault.search("caddy", folder="Projects/mcpgate/").matches == [("Projects/mcpgate/Plan.md", 3, "- caddy")]


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("../outside", "'..'"),
        ("/etc", "absolute"),
        (".obsidian", "hidden"),
        ("Missing", "not found"),
        ("Welcome.md", "not a folder"),
    ],
)
def test_search_folder_refusals(vault: Vault, folder: str, message: str) -> None:
    with pytest.raises(VaultError, match=re.escape(message)):
        vault.search("pineapple", folder=folder)


def test_search_folder_symlink_outside_refused(vault: Vault, vault_dir: Path, outside_dir: Path) -> None:
    (vault_dir / "Out").symlink_to(outside_dir, target_is_directory=True)
    with pytest.raises(VaultError, match="outside the vault"):
        vault.search("pineapple", folder="Out")


@pytest.mark.parametrize(("query", "message"), [("", "empty"), ("  ", "empty"), ("a\x00", "NUL"), ("x" * 257, "256")])
def test_search_query_refusals(vault: Vault, query: str, message: str) -> None:
    with pytest.raises(VaultError, match=re.escape(message)):
        vault.search(query)


def test_search_max_matches_per_note(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "many.md").write_text("hit\n" * 50)
    out = vault.search("hit", max_matches_per_note=3)
    assert out.matches == [("many.md", 1, "hit"), ("many.md", 2, "hit"), ("many.md", 3, "hit")]
    out = vault.search("hit", max_results=2, max_matches_per_note=10)
    assert len(out.matches) == 2
    assert (out.truncated, out.truncated_reason) == (True, "max_results")


def test_search_max_results_is_clamped_to_hard_cap(vault_dir: Path) -> None:
    v = Vault(vault_dir, Limits(search_hard_max_results=5))
    (vault_dir / "many.md").write_text("hit\n" * 50)
    assert len(v.search("hit", max_results=10_000, max_matches_per_note=50).matches) == 5


def test_search_skips_files_over_the_size_cap(vault_dir: Path) -> None:
    v = Vault(vault_dir, Limits(search_max_file_bytes=100))
    (vault_dir / "huge.md").write_text("pineapple\n" + "x" * 200)
    assert "huge.md" not in {p for p, _, _ in v.search("pineapple").matches}


def test_search_max_files_scanned(vault_dir: Path) -> None:
    v = Vault(vault_dir, Limits(search_max_files=2))
    out = v.search("no such text anywhere")
    assert out.files_scanned == 2
    assert (out.truncated, out.truncated_reason) == (True, "max_files_scanned")


def test_search_time_budget(vault_dir: Path) -> None:
    v = Vault(vault_dir, Limits(search_timeout_s=1e-9))
    out = v.search("pineapple")
    assert (out.truncated, out.truncated_reason) == (True, "time_budget")


def test_search_clips_long_lines_around_the_match(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "long.md").write_text("x" * 5000 + "NEEDLE" + "y" * 5000 + "\n")
    [(_, _, line)] = vault.search("needle").matches
    assert "NEEDLE" in line
    assert len(line) <= MAX_LINE_CHARS + 2
    assert line.startswith("…") and line.endswith("…")


def test_search_tolerates_invalid_utf8_and_crlf(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "mixed.md").write_bytes(b"caf\xe9 line\r\nsecond HIT\r\n")
    assert vault.search("hit").matches == [("mixed.md", 2, "second HIT")]
    assert vault.search("line").matches == [("mixed.md", 1, "caf\ufffd line")]


def test_search_order_is_deterministic(vault: Vault, vault_dir: Path) -> None:
    for name in ("b.md", "a.md", "C.md"):
        (vault_dir / "Projects" / name).write_text("zebra\n")
    (vault_dir / "zebra.md").write_text("zebra\n")
    paths = [p for p, _, _ in vault.search("zebra").matches]
    assert paths == ["zebra.md", "Projects/C.md", "Projects/a.md", "Projects/b.md"]


def test_search_ignores_temp_files_of_interrupted_writes(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / ".Welcome.md.abc123.tmp").write_text("pineapple\n")
    assert {p for p, _, _ in vault.search("pineapple").matches} == {"Welcome.md", "Daily/2025-01-31.md"}


def test_search_closes_every_descriptor(vault: Vault, vault_dir: Path) -> None:
    for i in range(30):
        d = vault_dir / f"d{i}" / "sub"
        d.mkdir(parents=True)
        (d / "n.md").write_text("hit\n")
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        vault.search("hit", max_results=3)
        vault.search("nothing matches this")
    assert len(os.listdir("/proc/self/fd")) == fds_before
