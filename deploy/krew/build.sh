#!/bin/bash
# `make krew`: the krew plugin archive kubectl-rollouts_linux_amd64.tar.gz and its manifest
# rollouts.yaml (written by rollouts_manifest.py, with the archive's sha256), in $OUT.
#
# The archive is not self-contained (the manifest's caveats say so): it holds the launcher
# kubectl-rollouts, kubectl_complete-rollouts, and wheels/ with the rollouts wheel and its
# dependencies' wheels, which the launcher installs into a virtualenv on its first run with
# the host's python3 (>= 3.11, with its venv module). The wheels are those of the image's
# builder stage (deploy/image/build.sh, run first: seconds when warm), built for CPython 3.11
# on linux/amd64; elsewhere pip fetches the compiled dependencies that do not fit.
#
#   deploy/krew/build.sh [--out DIR]     (default $CACHE/krew)
#   KREW_URI_BASE=https://.../download/v0.1.0 KREW_HOMEPAGE=https://... for a release
# Reproducible: the same wheels give the same archive bytes, so the same sha256.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)
OUT=$CACHE/krew
[ "${1:-}" = "--out" ] && OUT=${2:?--out DIR}
HOMEPAGE=${KREW_HOMEPAGE:-https://example.org/rollouts}
URI_BASE=${KREW_URI_BASE:-https://example.org/rollouts/releases/download/v$VERSION}
log() { echo "[krew] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) platform=linux_amd64 ;;
  Linux/aarch64) platform=linux_arm64 ;;
  *) die "the bundled wheels are built on Linux (amd64 or arm64), not $(uname -sm)" ;;
esac
ARCHIVE=$OUT/kubectl-rollouts_$platform.tar.gz

"$REPO/deploy/image/build.sh" >/dev/null || die "deploy/image/build.sh (the wheels come from its builder stage)"
builders=("$CACHE"/image-base-*/builder)
[ ${#builders[@]} = 1 ] && [ -f "$(dirname "${builders[0]}")/.complete" ] \
  || die "expected one complete builder stage under $CACHE/image-base-*, found: ${builders[*]}"
builder=${builders[0]}
wheel=$builder/dist/rollouts-$VERSION-py3-none-any.whl
[ -f "$wheel" ] || die "no $wheel (deploy/image/build.sh builds it)"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/wheels" "$OUT"
exec 9>"$CACHE/image.lock"
flock 9  # no image build replaces the builder's wheels while they are copied
[ -f "$wheel" ] || die "no $wheel (deploy/image/build.sh builds it)"
sed "s/@VERSION@/$VERSION/" "$REPO/deploy/krew/kubectl-rollouts" >"$stage/kubectl-rollouts"
cp "$REPO/deploy/krew/kubectl_complete-rollouts" "$stage/"
chmod 0755 "$stage/kubectl-rollouts" "$stage/kubectl_complete-rollouts"
cp "$builder"/wheels/*.whl "$wheel" "$stage/wheels/"
chmod 0644 "$stage"/wheels/*.whl
exec 9>&-
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" \
    -cf - kubectl-rollouts kubectl_complete-rollouts wheels | gzip -n -1 >"$ARCHIVE.part"
mv "$ARCHIVE.part" "$ARCHIVE"

py=$REPO/.venv/bin/python
[ -x "$py" ] || py=python3
"$py" "$REPO/deploy/krew/rollouts_manifest.py" --version "$VERSION" --homepage "$HOMEPAGE" \
  --uri-base "$URI_BASE" "$ARCHIVE" >"$OUT/rollouts.yaml.part" || die "rollouts_manifest.py"
mv "$OUT/rollouts.yaml.part" "$OUT/rollouts.yaml"
log "wrote $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)) and $OUT/rollouts.yaml"
log "install: kubectl krew install --manifest=$OUT/rollouts.yaml --archive=$ARCHIVE"
echo "$OUT/rollouts.yaml"
