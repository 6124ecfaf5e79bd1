"""Container healthcheck: ``python -m notes_vault.healthcheck`` exits 0 if /healthz answers 200.

Standard library only, so the image needs no curl. It always targets 127.0.0.1 (the
server binds 0.0.0.0 in the container) on NOTES_VAULT_PORT.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("NOTES_VAULT_PORT", "").strip() or "8080"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:
        print(f"healthcheck failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
