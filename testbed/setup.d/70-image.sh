#!/usr/bin/env bash
# podman and runc (Debian's packages) for the image tests (tests/e2e/test_image.py): they
# run the controller from the OCI archive that `make image` builds. Building the image
# itself (buildah, mmdebstrap, minutes) is left to `make image` (deploy/image/build.sh), so
# a cold `make setup` pays only this install (~30 s); the tests skip, saying so, until an
# archive exists. runc, not crun: crun refuses this machine's hybrid cgroup layout.
# Idempotent: seconds when both are there.
set -euo pipefail

have() { command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1; }

if have; then
  exit 0
fi
echo "[image] installing podman and runc (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends podman runc >/dev/null; }
if ! install; then
  echo "[image] install failed; refreshing the package lists and retrying" >&2
  apt-get update -q >/dev/null
  install || { echo "[image] could not install podman and runc with apt-get" >&2; exit 1; }
fi
have || { echo "[image] podman or runc missing after install" >&2; exit 1; }
ver=$(dpkg-query -W -f='${Version}' podman)
mkdir -p "${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}/podman-$ver"
echo "[image] podman $ver and runc ready" >&2
