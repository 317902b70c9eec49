#!/bin/bash
# Builds the controller's image from ./Dockerfile into an OCI archive, without a container
# engine or daemon (`make image`, and `make setup` through testbed/setup.d/70-image.sh).
#
# The Dockerfile's base (the official python slim image) cannot be pulled here: this machine
# reaches package registries but no container registry. So the same stages are built from
# Debian packages, as root:
#   1. mmdebstrap makes a minimal root filesystem of Debian $SUITE with python3 and its venv
#      module (Debian's Python 3.11: the slim image's Debian release and Python minor).
#   2. The builder stage: that filesystem unpacked, and the Dockerfile's builder steps
#      (deploy/image/steps.sh: tools, deps, user) run in it with chroot.
#   3. Each build: our sources copied in, `steps.sh app` builds and installs our wheel
#      under /app, and deploy/image/oci_build.py writes the last stage of the Dockerfile
#      (each COPY --from=builder a layer, ENV/USER/... the config) as an OCI archive.
# 1 and 2 (and the compressed layers of the base and of our dependencies) are cached under
# $CACHE/image-rootfs-* and $CACHE/image-base-<key>, the key a hash of their inputs: the
# suite, the dependencies of pyproject.toml, the Dockerfile and these scripts. Cold: a few
# minutes (docs/install.md); warm: seconds, and nothing at all when the sources, the
# revision and the key are those of the archive already there.
#
# Output: $IMAGE_ARCHIVE (default $CACHE/image/rollouts-controller-<version>.oci.tar, image
# name localhost/rollouts-controller:<version>); its path is printed on stdout.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/deploy/image
CACHE=${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
IMAGE=localhost/rollouts-controller:$VERSION
ARCHIVE=${IMAGE_ARCHIVE:-$CACHE/image/rollouts-controller-$VERSION.oci.tar}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# what the image's first layer and the builder start from (the slim image's ENV)
BASE_ENV=(--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8)
SOURCES=(pyproject.toml README.md rollouts analysis testbed crds)  # the Dockerfile's COPY

log() { echo "[image] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "the builder stage runs in a chroot, which needs root"
command -v python3 >/dev/null || die "no python3 on PATH"
t0=$(date +%s)
PIP_CERT_IN=

MMDEBSTRAP_OPTS=(--mode=root --format=tar --variant=minbase "--include=$PACKAGES"
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --aptopt='Acquire::Retries "3"')
ROOTFS_KEY=$(echo "$SUITE ${MMDEBSTRAP_OPTS[*]}" | sha256sum | cut -c1-12)
ROOTFS=$CACHE/image-rootfs-$SUITE-$ROOTFS_KEY/rootfs.tar
deps=$(python3 -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb"));
print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' "$REPO/pyproject.toml")
KEY=$({ echo "$ROOTFS_KEY"; echo "$deps"; cat "$REPO/Dockerfile" "$HERE/steps.sh" "$HERE/oci_build.py" "$HERE/build.sh"; } \
  | sha256sum | cut -c1-12)
BASE=$CACHE/image-base-$KEY
BUILDER=$BASE/builder

mkdir -p "$CACHE"
exec 9>"$CACHE/image.lock"
flock 9  # one build at a time (make image while make setup runs)

# --- the sources of this build: nothing to do when the archive was built from them ------
revision=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain -- Dockerfile "${SOURCES[@]}" deploy/image 2>/dev/null | head -c1)
[ -n "$dirty" ] && revision="$revision+dirty"
stamp=$(cd "$REPO" && { echo "$KEY $revision $ARCHIVE"; find "${SOURCES[@]}" -type f ! -name '*.pyc' \
  ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
if [ -s "$ARCHIVE" ] && [ "$(sed -n 2p "$ARCHIVE.source" 2>/dev/null)" = "$stamp" ]; then
  log "up to date: $ARCHIVE (revision $revision)"
  echo "$ARCHIVE"
  exit 0
fi

# chroot into the builder with a clean environment (the Dockerfile's builder ENV)
in_builder() {
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    HOME=/root PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 \
    ${PIP_CERT_IN:+PIP_CERT=$PIP_CERT_IN} chroot "$BUILDER" "$@"
}

# --- 1. the Debian root filesystem ----------------------------------------------------
if [ ! -f "$ROOTFS" ]; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (testbed/setup.d/70-image.sh installs it)"
  log "building the base root filesystem from Debian $SUITE packages (mmdebstrap, minutes, once)"
  rm -rf "$(dirname "$ROOTFS")"
  mkdir -p "$(dirname "$ROOTFS")"
  sources=/etc/apt/sources.list.d/debian.sources
  [ -s "$sources" ] || sources="deb http://deb.debian.org/debian $SUITE main"
  mmdebstrap "${MMDEBSTRAP_OPTS[@]}" "$SUITE" "$ROOTFS.part" "$sources" >"$ROOTFS.log" 2>&1 \
    || die "mmdebstrap (log: $ROOTFS.log)"
  mv "$ROOTFS.part" "$ROOTFS"
  for old in "$CACHE"/image-rootfs-*; do
    [ "$old" = "$(dirname "$ROOTFS")" ] || rm -rf "$old"
  done
fi

# --- 2. the builder stage up to our sources: build tools, dependencies, the user ----------
if [ ! -f "$BASE/.complete" ]; then
  log "builder stage: our dependencies' wheels into /opt/rollouts (key $KEY, minutes, once)"
  rm -rf "$BASE"
  mkdir -p "$BUILDER"
  tar -xf "$ROOTFS" -C "$BUILDER" || die "unpacking $ROOTFS"
  install -m 0755 "$HERE/steps.sh" "$BUILDER/usr/local/bin/rollouts-image-steps"
  mkdir -p "$BUILDER/src"
  cp "$REPO/pyproject.toml" "$REPO/README.md" "$BUILDER/src/"
  # a proxy that re-signs TLS: its CA for pip, in the builder only (no COPY takes it)
  PIP_CERT_IN=
  if [ -s "$CA_BUNDLE" ]; then
    cp "$CA_BUNDLE" "$BUILDER/tmp/ca-bundle.crt"
    PIP_CERT_IN=/tmp/ca-bundle.crt
  fi
  in_builder sh /usr/local/bin/rollouts-image-steps tools >&2 || die "steps.sh tools"
  in_builder sh /usr/local/bin/rollouts-image-steps deps /src >&2 || die "steps.sh deps"
  in_builder sh /usr/local/bin/rollouts-image-steps user >&2 || die "steps.sh user"
  rm -f "$BUILDER/tmp/ca-bundle.crt"
  PIP_CERT_IN=
  touch "$BASE/.complete"
  for old in "$CACHE"/image-base-*; do
    [ "$old" = "$BASE" ] || rm -rf "$old"
  done
  rm -rf "$CACHE/image-store"  # the buildah store of this script's earlier version
fi

# --- 3. our package, and the archive ----------------------------------------------------
log "building $IMAGE (revision $revision)"
rm -rf "$BUILDER/src"
mkdir -p "$BUILDER/src"
(cd "$REPO" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' "${SOURCES[@]}") | tar -xf - -C "$BUILDER/src"
PIP_CERT_IN=
in_builder sh /usr/local/bin/rollouts-image-steps app /src >/dev/null || die "steps.sh app"
mkdir -p "$(dirname "$ARCHIVE")"
python3 "$HERE/oci_build.py" --dockerfile "$REPO/Dockerfile" --builder "$BUILDER" \
  --rootfs "$ROOTFS" --layer-cache "$BASE/layers" --fresh /app --name "$IMAGE" "${BASE_ENV[@]}" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$revision" \
  --out "$ARCHIVE" >/dev/null || die "oci_build.py"
printf '%s\n%s\n' "$revision" "$stamp" >"$ARCHIVE.source"
log "wrote $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1), image $IMAGE) in $(( $(date +%s) - t0 )) s"
echo "$ARCHIVE"
