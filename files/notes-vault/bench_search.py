"""Search benchmark: builds a synthetic vault in a temp dir and prints latency and peak memory.

    python files/notes-vault/bench_search.py [--notes 20000] [--note-bytes 2000] [--repeat 5]

Figures only, no assertions. Runs the filesystem layer directly (no MCP/HTTP overhead),
with a warm page cache after the first pass. Not shipped in the image.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notes_vault.vault import Limits, SearchOutcome, Vault

WORDS = [
    "tailscale",
    "funnel",
    "caddy",
    "authelia",
    "gateway",
    "token",
    "scope",
    "vault",
    "markdown",
    "note",
    "project",
    "meeting",
    "idea",
    "garden",
    "recipe",
    "budget",
    "travel",
    "python",
    "debian",
    "container",
    "health",
    "search",
    "write",
    "read",
    "delete",
]


def build_vault(root: Path, notes: int, note_bytes: int, folders: int) -> int:
    rng = random.Random(42)
    total = 0
    for i in range(notes):
        folder = root / f"Area {i % folders:03d}" / f"Sub {i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"# Note {i}", ""]
        size = 0
        while size < note_bytes:
            line = " ".join(rng.choice(WORDS) for _ in range(12))
            lines.append(line)
            size += len(line) + 1
        if i == notes - 3:
            lines.append("the one line mentioning a Zanzibar ferry")
        text = "\n".join(lines) + "\n"
        (folder / f"note-{i:06d}.md").write_text(text, encoding="utf-8")
        total += len(text)
    (root / ".obsidian").mkdir()
    (root / ".obsidian" / "workspace.md").write_text("zanzibar in hidden config\n")
    return total


def timed(fn: Callable[[], SearchOutcome], repeat: int) -> tuple[list[float], SearchOutcome]:
    times: list[float] = []
    out = fn()  # warm-up (page cache, dentries)
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def peak_python_bytes(fn: Callable[[], SearchOutcome]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=20_000)
    ap.add_argument("--note-bytes", type=int, default=2_000)
    ap.add_argument("--folders", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="notes-bench-") as tmp:
        root = Path(tmp) / "vault"
        t0 = time.perf_counter()
        total = build_vault(root, args.notes, args.note_bytes, args.folders)
        print(
            f"vault: {args.notes} notes, {total / 1e6:.1f} MB, built in {time.perf_counter() - t0:.1f}s "
            f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus)"
        )
        vault = Vault(root, Limits(search_max_files=1_000_000, search_timeout_s=600))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cases: list[tuple[str, Callable[[], SearchOutcome]]] = [
            ("common word, max_results=20 (early stop)", lambda: vault.search("gateway", max_results=20)),
            ("common word, max_results=200 (hard cap)", lambda: vault.search("gateway", max_results=200)),
            ("rare word, full scan", lambda: vault.search("zanzibar")),
            ("absent word, full scan", lambda: vault.search("no-such-word-anywhere")),
            ("absent word, one folder", lambda: vault.search("no-such-word-anywhere", folder="Area 007")),
        ]
        print(f"{'case':44} {'median':>9} {'min':>9} {'scanned':>8} {'hits':>5} {'py peak':>9}")
        for name, fn in cases:
            times, out = timed(fn, args.repeat)
            peak = peak_python_bytes(fn)
            print(
                f"{name:44} {statistics.median(times) * 1000:7.1f}ms {min(times) * 1000:7.1f}ms "
                f"{out.files_scanned:8d} {len(out.matches):5d} {peak / 1024:7.0f}KB"
            )
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"process max RSS: {rss_after / 1024:.1f} MB (before searches: {rss_before / 1024:.1f} MB)")


if __name__ == "__main__":
    main()
