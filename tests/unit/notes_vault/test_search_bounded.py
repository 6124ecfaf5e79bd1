"""Search stays bounded on a big vault: capped results, early stop, no whole-vault read."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from notes_vault.vault import Limits, Vault

NOTES = 5000
FOLDERS = 50
NOTE_BYTES = 2000  # ~10 MB of notes in total
FILLER_LINES = NOTE_BYTES // 109
UNICORN_LINE = 2 + FILLER_LINES + 1  # after the title, the "common" line and the filler


@pytest.fixture(scope="module")
def big_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "vault"
    filler = ("lorem ipsum dolor sit amet " * 4 + "\n") * FILLER_LINES
    for i in range(NOTES):
        folder = root / f"Area {i % FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        # every note mentions "common"; exactly one mentions "unicorn", near the end of the walk
        special = "a rare UNICORN sighting\n" if i == NOTES - 7 else ""
        (folder / f"note-{i:05d}.md").write_text(f"# Note {i}\ncommon word here\n{filler}{special}", encoding="utf-8")
    return root


class CountingVault(Vault):
    """Counts how many notes a search actually opens."""

    opened = 0

    def _open_note_fd(self, dir_fd: int, name: str) -> int:
        type(self).opened += 1
        return super()._open_note_fd(dir_fd, name)


@pytest.fixture
def counting(big_vault: Path) -> type[CountingVault]:
    CountingVault.opened = 0
    return CountingVault


def test_returns_at_most_max_results_and_stops_early(big_vault: Path, counting: type[CountingVault]) -> None:
    v = counting(big_vault)
    out = v.search("common", max_results=10, max_matches_per_note=1)
    assert len(out.matches) == 10
    assert (out.truncated, out.truncated_reason) == (True, "max_results")
    assert out.files_scanned == 10
    assert counting.opened == 10, "search must stop opening notes once it has enough results"
    assert [p for p, _, _ in out.matches] == [f"Area 00/note-{i:05d}.md" for i in range(0, 500, 50)]
    assert all(line == "common word here" and n == 2 for _, n, line in out.matches)


def test_hard_cap_applies_even_if_more_is_asked(big_vault: Path, counting: type[CountingVault]) -> None:
    v = counting(big_vault)
    out = v.search("common", max_results=1_000_000, max_matches_per_note=1)
    assert len(out.matches) == Limits().search_hard_max_results == 200
    assert counting.opened == 200


def test_max_files_scanned_cap(big_vault: Path, counting: type[CountingVault]) -> None:
    v = counting(big_vault, Limits(search_max_files=1000))
    out = v.search("no note contains this")
    assert out.matches == []
    assert out.files_scanned == 1000
    assert counting.opened == 1000
    assert (out.truncated, out.truncated_reason) == (True, "max_files_scanned")


def test_full_scan_finds_the_needle_with_bounded_memory(big_vault: Path, counting: type[CountingVault]) -> None:
    v = counting(big_vault)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        out = v.search("unicorn")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(p, n) for p, n, _ in out.matches] == [
        (f"Area {(NOTES - 7) % FOLDERS:02d}/note-{NOTES - 7:05d}.md", UNICORN_LINE)
    ]
    assert out.files_scanned == NOTES == counting.opened
    assert not out.truncated
    # ~10 MB of notes on disk; streaming line by line keeps the peak far below that.
    assert peak < 2_000_000, f"search peak memory {peak} bytes: is it reading whole files or the whole vault?"
    assert elapsed < 30


def test_time_budget_stops_a_slow_scan(big_vault: Path, counting: type[CountingVault]) -> None:
    v = counting(big_vault, Limits(search_timeout_s=0.05))
    out = v.search("no note contains this")
    assert out.truncated_reason == "time_budget"
    assert counting.opened < NOTES
