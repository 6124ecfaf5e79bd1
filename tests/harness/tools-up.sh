#!/usr/bin/env bash
# Debian packages the harness and the tests use besides the engine and sshd: npm (authelia/build.sh
# fetches Node and pnpm with it to build Authelia's portal), and for the browser tests
# (tests/e2e/test_browser.py) chromium, chromium-driver and caddy (the TLS front that stands in for
# Funnel); restic and shellcheck, which tests/unit/test_backup_plan.py runs on the rendered backup
# scripts and a real repository. Idempotent: installs only what is missing.
set -euo pipefail
# shellcheck source=tests/harness/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
# Any npm will do (a machine with NodeSource's nodejs has one, and Debian's npm conflicts with it).
command -v npm >/dev/null 2>&1 || apt_install npm
apt_install chromium chromium-driver caddy restic shellcheck
