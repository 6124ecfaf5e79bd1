"""Path confinement: every refusal, for every tool, with real symlinks on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from notes_vault.vault import Vault, VaultError, split_folder_path, split_note_path

from ._util import all_files

Op = Callable[[Vault, str], object]

OPS: dict[str, Op] = {
    "read": lambda v, p: v.read(p),
    "write": lambda v, p: v.write(p, "overwritten!\n"),
    "delete": lambda v, p: v.delete(p),
}

LEXICAL_REFUSALS: list[tuple[str, str]] = [
    ("../secret.md", "'..'"),
    ("../outside/secret.md", "'..'"),
    ("Projects/../../outside/secret.md", "'..'"),
    ("Projects/../Welcome.md", "'..'"),  # even when it would stay inside
    ("..", "'..'"),
    ("/etc/passwd.md", "absolute"),
    ("/tmp/x.md", "absolute"),
    ("~/notes.md", "absolute"),
    ("", "empty"),
    ("   ", "empty"),
    ("Welcome.md\x00.txt", "NUL"),
    ("\x00", "NUL"),
    ("Welcome.txt", ".md"),
    ("Daily/attachment.png", ".md"),
    ("Projects", ".md"),
    ("Projects/", "empty"),
    ("notes.md.bak", ".md"),
    (".obsidian/workspace.md", "hidden"),
    (".trash/old.md", "hidden"),
    ("Daily/.secret.md", "hidden"),
    (".md", "hidden"),
    ("./Welcome.md", "'.'"),
    ("Projects//Plan.md", "empty"),
    ("Projects\\mcpgate\\Plan.md", "separator"),
    ("a" * 256 + ".md", "255 bytes"),
    ("a/" * 600 + "x.md", "1024"),
]


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize(("path", "reason"), LEXICAL_REFUSALS)
def test_lexical_refusals(vault: Vault, vault_dir: Path, op: str, path: str, reason: str) -> None:
    before = all_files(vault_dir)
    with pytest.raises(VaultError) as err:
        OPS[op](vault, path)
    assert reason in str(err.value)
    assert "refused" in str(err.value)
    assert all_files(vault_dir) == before


def test_non_string_path_refused(vault: Vault) -> None:
    with pytest.raises(VaultError, match="empty"):
        vault.read(None)  # type: ignore[arg-type]


def test_split_helpers() -> None:
    assert split_note_path("a/b/C.MD") == ["a", "b", "C.MD"]
    assert split_folder_path("") == []
    assert split_folder_path("Projects/mcpgate/") == ["Projects", "mcpgate"]
    with pytest.raises(VaultError, match=r"'\.\.'"):
        split_folder_path("../x")


# ---------------------------------------------------------------- symlinks


@pytest.mark.parametrize("op", sorted(OPS))
def test_symlinked_note_pointing_outside_is_refused(vault: Vault, vault_dir: Path, outside_dir: Path, op: str) -> None:
    (vault_dir / "escape.md").symlink_to(outside_dir / "secret.md")
    with pytest.raises(VaultError, match="outside the vault"):
        OPS[op](vault, "escape.md")
    assert (outside_dir / "secret.md").read_text() == "outside pineapple secret\n"
    assert (vault_dir / "escape.md").is_symlink()


@pytest.mark.parametrize("op", sorted(OPS))
def test_relative_symlink_pointing_outside_is_refused(
    vault: Vault, vault_dir: Path, outside_dir: Path, op: str
) -> None:
    (vault_dir / "Daily" / "rel.md").symlink_to(Path("..") / ".." / "outside" / "secret.md")
    with pytest.raises(VaultError, match="outside the vault"):
        OPS[op](vault, "Daily/rel.md")
    assert (outside_dir / "secret.md").read_text() == "outside pineapple secret\n"


@pytest.mark.parametrize("op", sorted(OPS))
def test_symlinked_parent_folder_pointing_outside_is_refused(
    vault: Vault, vault_dir: Path, outside_dir: Path, op: str
) -> None:
    (vault_dir / "Linked").symlink_to(outside_dir, target_is_directory=True)
    before_outside = all_files(outside_dir)
    for path in ("Linked/secret.md", "Linked/new.md", "Linked/deeper/new.md"):
        with pytest.raises(VaultError, match="outside the vault"):
            OPS[op](vault, path)
    assert all_files(outside_dir) == before_outside
    assert (outside_dir / "secret.md").read_text() == "outside pineapple secret\n"


def test_dangling_symlink_to_outside_does_not_create_the_target(
    vault: Vault, vault_dir: Path, outside_dir: Path
) -> None:
    (vault_dir / "dangling.md").symlink_to(outside_dir / "created-by-attacker.md")
    with pytest.raises(VaultError, match="outside the vault"):
        vault.write("dangling.md", "x")
    assert not (outside_dir / "created-by-attacker.md").exists()


def test_symlink_to_vault_root_itself_is_refused(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "root.md").symlink_to(vault_dir, target_is_directory=True)
    with pytest.raises(VaultError, match="outside the vault"):
        vault.read("root.md")


def test_symlink_into_hidden_folder_is_refused(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "sneaky.md").symlink_to(vault_dir / ".obsidian" / "workspace.md")
    with pytest.raises(VaultError, match="hidden or non-Markdown"):
        vault.read("sneaky.md")
    with pytest.raises(VaultError, match="hidden or non-Markdown"):
        vault.write("sneaky.md", "x")
    assert (vault_dir / ".obsidian" / "workspace.md").read_text() == "pineapple in hidden config\n"


def test_symlink_to_non_markdown_file_is_refused(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "picture.md").symlink_to(vault_dir / "Daily" / "attachment.png")
    with pytest.raises(VaultError, match="hidden or non-Markdown"):
        vault.read("picture.md")


def test_symlink_loop_gives_a_clear_error(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "loop-a.md").symlink_to(vault_dir / "loop-b.md")
    (vault_dir / "loop-b.md").symlink_to(vault_dir / "loop-a.md")
    with pytest.raises(VaultError, match="is a symlink"):
        vault.read("loop-a.md")
    with pytest.raises(VaultError, match="not a regular note file"):
        vault.write("loop-a.md", "x")
    # deleting the broken link itself is fine: unlink never follows it
    assert vault.delete("loop-a.md") == "loop-a.md"
    assert not os.path.lexists(vault_dir / "loop-a.md")


def test_symlink_inside_vault_is_followed_for_read_and_write(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "Alias.md").symlink_to(Path("Projects") / "mcpgate" / "Plan.md")
    assert vault.read("Alias.md").startswith("# Plan")
    out = vault.write("Alias.md", "# Plan v2\n")
    assert out.path == "Projects/mcpgate/Plan.md"
    assert not out.created
    assert (vault_dir / "Alias.md").is_symlink()
    assert (vault_dir / "Projects" / "mcpgate" / "Plan.md").read_text() == "# Plan v2\n"


def test_symlinked_folder_inside_vault_is_followed(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "P").symlink_to(vault_dir / "Projects", target_is_directory=True)
    assert vault.read("P/mcpgate/Plan.md").startswith("# Plan")
    assert vault.write("P/new/Idea.md", "idea\n").path == "Projects/new/Idea.md"
    assert (vault_dir / "Projects" / "new" / "Idea.md").read_text() == "idea\n"


def test_delete_of_inside_symlink_removes_only_the_link(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "Alias.md").symlink_to(vault_dir / "Welcome.md")
    assert vault.delete("Alias.md") == "Alias.md"
    assert not (vault_dir / "Alias.md").is_symlink()
    assert (vault_dir / "Welcome.md").exists()


def test_vault_root_given_through_a_symlink(tmp_path: Path, vault_dir: Path) -> None:
    link = tmp_path / "vault-link"
    link.symlink_to(vault_dir, target_is_directory=True)
    v = Vault(link)
    assert v.root == os.path.realpath(vault_dir)
    assert v.read("Welcome.md").startswith("# Welcome")


def test_vault_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        Vault(tmp_path / "missing")


# ------------------------------------------------------- time-of-check races


def test_parent_swapped_for_symlink_after_the_check_is_not_followed(
    vault: Vault, vault_dir: Path, outside_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulates a folder replaced by a symlink between realpath() and open().

    The openat walk uses O_NOFOLLOW at every component, so it fails instead of
    following the link out of the vault.
    """
    (vault_dir / "Swapped").symlink_to(outside_dir, target_is_directory=True)
    monkeypatch.setattr(Vault, "_resolve", lambda self, path, follow_final: ["Swapped", "secret.md"])
    with pytest.raises(VaultError, match="symlink or not a folder"):
        vault.read("Swapped/secret.md")
    with pytest.raises(VaultError, match="symlink or not a folder"):
        vault.write("Swapped/secret.md", "pwned")
    with pytest.raises(VaultError, match="symlink or not a folder"):
        vault.delete("Swapped/secret.md")
    assert (outside_dir / "secret.md").read_text() == "outside pineapple secret\n"


def test_final_component_swapped_for_symlink_after_the_check_is_not_followed(
    vault: Vault, vault_dir: Path, outside_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (vault_dir / "late.md").symlink_to(outside_dir / "secret.md")
    monkeypatch.setattr(Vault, "_resolve", lambda self, path, follow_final: ["late.md"])
    with pytest.raises(VaultError, match="symlink"):
        vault.read("late.md")
    with pytest.raises(VaultError, match="not a regular note file"):
        vault.write("late.md", "pwned")
    assert (outside_dir / "secret.md").read_text() == "outside pineapple secret\n"


# ---------------------------------------------------------- odd file types


def test_fifo_is_refused_without_blocking(vault: Vault, vault_dir: Path) -> None:
    os.mkfifo(vault_dir / "pipe.md")
    with pytest.raises(VaultError, match="not a regular file"):
        vault.read("pipe.md")
    with pytest.raises(VaultError, match="not a regular note file"):
        vault.write("pipe.md", "x")
    with pytest.raises(VaultError, match="not a regular note file"):
        vault.delete("pipe.md")


def test_folder_named_like_a_note_is_refused(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "Folder.md").mkdir()
    with pytest.raises(VaultError, match="folder"):
        vault.read("Folder.md")
    with pytest.raises(VaultError, match="not a regular note file"):
        vault.write("Folder.md", "x")
    with pytest.raises(VaultError, match="folder"):
        vault.delete("Folder.md")
    assert (vault_dir / "Folder.md").is_dir()


def test_note_used_as_a_folder_is_refused(vault: Vault) -> None:
    with pytest.raises(VaultError, match="not a folder"):
        vault.read("Welcome.md/child.md")
    with pytest.raises(VaultError, match="not a folder"):
        vault.write("Welcome.md/child.md", "x")
