#!/usr/bin/env bash
# Builds the real Argo Rollouts controller (v1.9.2) from its Go module, once, for the
# side-by-side controller benchmark (make bench-controller). Cached outside the repo:
#   ~/.cache/rollouts-testbed/argo-rollouts-v1.9.2/rollouts-controller
#   ~/.cache/rollouts-testbed/argo-rollouts-v1.9.2/crds/*.yaml (Argo's CRDs, same module)
# Idempotent: seconds when warm. Cold: about 11 min on 2 idle cores (more under load).
# Prints the cache directory on its last line.
set -euo pipefail

ARGO_VERSION="${ARGO_VERSION:-v1.9.2}"
CACHE="${HOME}/.cache/rollouts-testbed/argo-rollouts-${ARGO_VERSION}"
BIN="${CACHE}/rollouts-controller"

if [[ -x "${BIN}" && -f "${CACHE}/crds/rollout-crd.yaml" && -f "${CACHE}/.complete" ]]; then
    echo "${CACHE}"
    exit 0
fi

command -v go >/dev/null || { echo "argo_build.sh: go is not installed" >&2; exit 1; }
mkdir -p "${CACHE}"
# one build at a time: a second caller waits for the first, then finds the cache warm
exec 9>"${CACHE}.lock"
flock 9
if [[ -x "${BIN}" && -f "${CACHE}/.complete" ]]; then
    echo "${CACHE}"
    exit 0
fi

echo "argo_build.sh: downloading github.com/argoproj/argo-rollouts@${ARGO_VERSION}" >&2
MOD_JSON="$(go mod download -json "github.com/argoproj/argo-rollouts@${ARGO_VERSION}")"
MOD_DIR="$(printf '%s' "${MOD_JSON}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -d "${MOD_DIR}" ]] || { echo "argo_build.sh: module dir not found in: ${MOD_JSON}" >&2; exit 1; }

# The module cache is read-only; build in a writable copy (the build's go.mod/go.sum
# stay as released).
SRC="${CACHE}/src"
if [[ ! -f "${SRC}/go.mod" ]]; then
    rm -rf "${SRC}.tmp"
    cp -r "${MOD_DIR}" "${SRC}.tmp"
    chmod -R u+w "${SRC}.tmp"
    mv "${SRC}.tmp" "${SRC}"
fi
# The controller serves /metrics and /healthz on 0.0.0.0 (a hard-coded format string); on
# this shared machine every server binds to the loopback only. The one change to Argo's
# source: the listen address, nothing the benchmark measures.
sed -i 's/listenAddr\( *\)= "0.0.0.0:%d"/listenAddr\1= "127.0.0.1:%d"/' "${SRC}/controller/controller.go"
grep -q 'listenAddr *= "127.0.0.1:%d"' "${SRC}/controller/controller.go" || {
    echo "argo_build.sh: could not bind Argo's metrics/healthz to 127.0.0.1" >&2; exit 1; }

echo "argo_build.sh: go build ./cmd/rollouts-controller (long when cold)" >&2
start=$(date +%s)
(
    cd "${SRC}"
    CGO_ENABLED=0 GOFLAGS=-modcacherw go build -trimpath -ldflags "-s -w" \
        -o "${BIN}.tmp" ./cmd/rollouts-controller
)
mv "${BIN}.tmp" "${BIN}"
echo "argo_build.sh: built in $(( $(date +%s) - start )) s" >&2

mkdir -p "${CACHE}/crds"
cp "${SRC}"/manifests/crds/*.yaml "${CACHE}/crds/"
touch "${CACHE}/.complete"
echo "${CACHE}"
