#!/usr/bin/env bash
# helm, built from its Go module (helm.sh/helm/v3, cmd/helm), for the chart tests
# (tests/e2e/test_helm.py: lint, template --dry-run=server, install on the test bed).
# Cached like the test bed's binaries under $TESTBED_CACHE/helm-<version>/helm; never in
# the repo. Cold: a few minutes of go build; warm: instant.
set -euo pipefail
HELM_VERSION=v3.22.0
CACHE=${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}
DIR=$CACHE/helm-$HELM_VERSION
if [ -x "$DIR/helm" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "[helm] no Go toolchain on PATH (testbed/setup.sh needs one too)" >&2; exit 1; }
echo "[helm] building helm $HELM_VERSION from its Go module (minutes, once)" >&2
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-modcacherw -buildvcs=false"
mkdir -p "$DIR.part"
# as helm's own Makefile: the Kubernetes version that `helm template` and `helm lint`
# assume is the client-go minor helm is built with (else 1.20, older than the chart allows)
GOMOD=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
K8S_MINOR=$(sed -n 's|^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*|\1|p' "$GOMOD" | head -1)
[ -n "$K8S_MINOR" ] || { echo "[helm] no k8s.io/client-go version in $GOMOD" >&2; exit 1; }
LD="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  LD="$LD -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
done
GOBIN="$DIR.part" go install -trimpath -ldflags "$LD" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 \
  || { echo "[helm] go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed" >&2; exit 1; }
"$DIR.part/helm" version --short >/dev/null || { echo "[helm] the built helm does not run" >&2; exit 1; }
rm -rf "$DIR" && mv "$DIR.part" "$DIR"
echo "[helm] $("$DIR/helm" version --short) at $DIR/helm" >&2
