"""The rendered ingress under a bounded fuzz: the real Caddyfile in the harness' Caddy image, tricky
requests sent byte for byte, and what each upstream received checked (tests/e2e/ingress_fuzz.py
says what counts as a finding). Needs only the Docker engine and the Caddy image, so it runs in CI.

Run it alone, one line per case: ``MCPGATE_E2E=1 .venv/bin/pytest tests/e2e/test_ingress_fuzz.py -q -s``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from mcpgate.model import load_stack
from mcpgate.render import render_stack
from mcpgate.secrets import SecretStore, StackSecrets
from tests.conftest import BASE_STACK
from tests.e2e.harness import LOCAL_IMAGES, image_exists
from tests.e2e.ingress_fuzz import TOTAL_TIMEOUT, all_cases, fuzz

pytestmark = pytest.mark.skipif(
    os.environ.get("MCPGATE_E2E") != "1", reason="the test harness is not up (run the suite with bin/test as root)"
)


def test_the_rendered_ingress_survives_the_fuzz(tmp_path: Path) -> None:
    image = LOCAL_IMAGES["ingress"]
    if not image_exists(image):
        pytest.skip(f"local image {image} is missing (tests/harness/build-images.sh)")
    stack = load_stack("fuzz.test", copy.deepcopy(BASE_STACK))
    store = SecretStore.for_host(tmp_path / "secrets", "fuzz.test")
    store.set("tokens/home-assistant-token", "not-used-by-the-ingress")
    caddyfile = render_stack(stack, StackSecrets(store, stack)).file("ingress/config/Caddyfile").content.decode()

    report = fuzz(caddyfile, image, stack.hostname, stack.gateway_port)

    assert not report.timed_out, f"the fuzz ran over {TOTAL_TIMEOUT:.0f} s"
    assert len(report.results) == len(all_cases(stack.hostname))
    assert not report.findings, "\n".join(r.line() for r in report.findings)
