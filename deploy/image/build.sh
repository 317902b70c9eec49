#!/bin/bash
# Builds the controller's image from ./Dockerfile into an OCI archive, without a Docker
# daemon: Debian's buildah with vfs storage and chroot isolation, run as root.
#
# The Dockerfile's base (PYTHON_IMAGE, the official python slim image by default) cannot
# be pulled here: this machine reaches package registries but no container registry. So
# the base is built from Debian packages instead: mmdebstrap makes a minimal bookworm root
# filesystem with python3 and its venv module (Debian's Python 3.11, the same Debian
# release and Python minor version as python:3.11-slim-bookworm), buildah commits it as
# localhost/rollouts-python-base:bookworm, and the Dockerfile is built FROM that. Anywhere
# a registry can be reached, `docker build .` builds the same Dockerfile FROM the slim image.
#
# Output: $IMAGE_ARCHIVE (default ~/.cache/rollouts-testbed/image/rollouts-controller-<version>.oci.tar,
# image name localhost/rollouts-controller:<version>), with a .source file beside it naming
# the git tree it was built from. Cold: ~2 min for the base (cached after), ~3.5 min for the
# image on an idle 2-core machine (docs/install.md).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)
SUITE=bookworm
BASE_TAR=$CACHE/image-base-$SUITE/rootfs.tar
BASE_IMAGE=localhost/rollouts-python-base:$SUITE
IMAGE=localhost/rollouts-controller:$VERSION
STORE=$CACHE/image-store
ARCHIVE=${IMAGE_ARCHIVE:-$CACHE/image/rollouts-controller-$VERSION.oci.tar}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "[image] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "buildah with vfs storage and chroot isolation runs as root here"

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -q --no-install-recommends "${need[@]}" >&2; } \
    || die "apt-get install ${need[*]}"
fi

bah() { buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs "$@"; }

# --- the base: a minimal Debian root filesystem with python3 ---------------------------
if [ ! -s "$BASE_TAR" ]; then
  log "building the base root filesystem from Debian $SUITE packages (mmdebstrap, minutes)"
  mkdir -p "$(dirname "$BASE_TAR")"
  sources=/etc/apt/sources.list.d/debian.sources
  [ -s "$sources" ] || sources="deb http://deb.debian.org/debian $SUITE main"
  mmdebstrap --mode=root --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --aptopt='Acquire::Retries "3"' \
    "$SUITE" "$BASE_TAR.part" "$sources" >"$BASE_TAR.log" 2>&1 \
    || die "mmdebstrap (log: $BASE_TAR.log)"
  mv "$BASE_TAR.part" "$BASE_TAR"
  bah rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
fi
if ! bah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  log "committing $BASE_IMAGE"
  ctr=$(bah from scratch)
  bah add "$ctr" "$BASE_TAR" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  bah commit -q "$ctr" "$BASE_IMAGE" >/dev/null
  bah rm "$ctr" >/dev/null
fi

# --- the image ------------------------------------------------------------------------
revision=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain -- Dockerfile pyproject.toml rollouts analysis testbed crds 2>/dev/null | head -c1)
[ -n "$dirty" ] && revision="$revision+dirty"
secret=()
[ -s "$CA_BUNDLE" ] && secret=(--secret "id=ca-bundle,src=$CA_BUNDLE")
log "building $IMAGE from $REPO/Dockerfile (revision $revision)"
bah bud --isolation chroot --network host --pull-never --format oci \
  --build-arg "PYTHON_IMAGE=$BASE_IMAGE" "${secret[@]}" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$revision" \
  -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO" >&2 || die "buildah bud"
mkdir -p "$(dirname "$ARCHIVE")"
rm -f "$ARCHIVE.part"
bah push -q "$IMAGE" "oci-archive:$ARCHIVE.part:$IMAGE" >&2 || die "buildah push to $ARCHIVE"
mv "$ARCHIVE.part" "$ARCHIVE"
echo "$revision" >"$ARCHIVE.source"
# the builder stage's layers are not needed again; the base stays for the next build
bah rmi -f "$IMAGE" >/dev/null 2>&1 || true
bah rmi --prune >/dev/null 2>&1 || true
log "wrote $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1), image $IMAGE)"
echo "$ARCHIVE"
