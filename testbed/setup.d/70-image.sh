#!/usr/bin/env bash
# The controller's image, for the image tests (tests/e2e/test_image.py): mmdebstrap, podman
# and runc (Debian's packages), then `make image` (deploy/image/build.sh), which writes the
# OCI archive the tests run. runc, not crun: crun refuses this machine's hybrid cgroup layout.
# Cold: the Debian root filesystem and our dependencies' wheels, a few minutes once (cached
# under $TESTBED_CACHE/image-rootfs-*, image-base-<hash of their inputs>); warm: our own
# package's layer only, seconds, or nothing when the archive matches the sources.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)

have() { command -v podman && command -v runc && command -v mmdebstrap; } >/dev/null 2>&1

if ! have; then
  echo "[image] installing podman, runc and mmdebstrap (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  install() { apt-get install -y -q --no-install-recommends podman runc mmdebstrap >/dev/null; }
  if ! install; then
    echo "[image] install failed; refreshing the package lists and retrying" >&2
    apt-get update -q >/dev/null
    install || { echo "[image] could not install podman, runc and mmdebstrap with apt-get" >&2; exit 1; }
  fi
  have || { echo "[image] podman, runc or mmdebstrap missing after install" >&2; exit 1; }
fi
"$REPO/deploy/image/build.sh" >/dev/null
