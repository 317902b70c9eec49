#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the dashboard's end-to-end tests
# (tests/e2e/test_dashboard.py). Debian's own packages: no browser download at test time.
# Idempotent: seconds when both binaries are already there.
set -euo pipefail

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if have; then
  exit 0
fi
echo "[chromium] installing chromium and chromium-driver (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
if ! install; then
  echo "[chromium] install failed; refreshing the package lists and retrying" >&2
  apt-get update -q >/dev/null
  install || { echo "[chromium] could not install chromium and chromium-driver with apt-get" >&2; exit 1; }
fi
have || { echo "[chromium] chromium or chromedriver missing after install" >&2; exit 1; }
# the cache dir records the installed version (nothing is built here, so nothing else to keep)
ver=$(dpkg-query -W -f='${Version}' chromium)
mkdir -p "${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}/chromium-$ver"
echo "[chromium] $(chromium --version 2>/dev/null || echo chromium $ver) ready" >&2
