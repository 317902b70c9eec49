#!/usr/bin/env bash
# Builds (once) and caches the test bed's binaries outside the repository:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler (from Go modules),
# kwok + kwokctl and their stage files, the Istio CRDs, the Gateway API route CRDs (in a
# cache dir of their own); installs Debian's
# prometheus and prometheus-alertmanager. Idempotent: a warm run takes seconds.
# Prints the cache directory on its last line of stdout.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
ISTIO_API_VERSION="${ISTIO_API_VERSION:-v1.31.4}"
# Gateway API route CRDs (standard channel); kept apart from $DIR so that adding or bumping
# them never rebuilds the binaries. v1.6.x is the newest line whose go directive Go 1.26 takes.
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
CACHE_ROOT="${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}"
DIR="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-istio-$ISTIO_API_VERSION"
BIN="$DIR/bin"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-modcacherw -buildvcs=false"

step=""
say() { echo "[testbed-setup] $*" >&2; }
begin() { step="$1"; say "step: $1"; }
fail() { say "FAILED at step '$step': $*"; exit 1; }
trap 'rc=$?; [ $rc -ne 0 ] && say "FAILED at step: ${step:-start} (exit $rc)"' EXIT

begin "check tools"
command -v go >/dev/null || fail "no Go toolchain on PATH; install Go >= 1.25 (e.g. the Debian package golang-go or an official tarball) and re-run"
command -v python3 >/dev/null || fail "no python3 on PATH; install Python 3.11+"

begin "debian packages prometheus, prometheus-alertmanager"
if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null || ! command -v promtool >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  command -v apt-get >/dev/null || fail "apt-get not found: install prometheus and prometheus-alertmanager (Prometheus 2.x, Alertmanager 0.25+) by hand"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || fail "apt-get update failed"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >&2 \
    || fail "apt-get install prometheus prometheus-alertmanager failed"
  # Debian's postinst may start services via invoke-rc.d where an init system runs; we never rely on them.
fi

begin "gateway API CRDs $GATEWAY_API_VERSION (standard channel)"
ROUTER_CRDS="$CACHE_ROOT/router-crds-gateway-api-$GATEWAY_API_VERSION"
if [ ! -f "$ROUTER_CRDS/.complete" ]; then
  GW_DIR=$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$ROUTER_CRDS"
  for k in httproutes grpcroutes tcproutes; do
    src="$GW_DIR/config/crd/standard/gateway.networking.k8s.io_$k.yaml"
    [ -f "$src" ] || fail "$src not found in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
    cp "$src" "$ROUTER_CRDS/"
  done
  chmod -R u+w "$ROUTER_CRDS"
  touch "$ROUTER_CRDS/.complete"
fi
mkdir -p "$DIR"
echo "$ROUTER_CRDS" > "$DIR/router-crds-dir"  # where testbed/cluster.py finds them

if [ -f "$DIR/.complete" ]; then
  say "cached: $DIR"
  echo "$DIR"
  exit 0
fi
mkdir -p "$BIN" "$DIR/work"
START=$(date +%s)

begin "etcd $ETCD_VERSION"
if [ ! -x "$BIN/etcd" ]; then
  W="$DIR/work/etcd"; rm -rf "$W"; mkdir -p "$W"; cd "$W"
  go mod init testbed/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2
fi

begin "kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler)"
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ] || [ ! -x "$BIN/kube-scheduler" ]; then
  W="$DIR/work/k8s"; rm -rf "$W"; mkdir -p "$W"; cd "$W"
  GOMOD=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  STAGING="v0.${K8S_VERSION#v1.}"
  {
    echo "module testbed/k8s"
    grep -E '^go [0-9]' "$GOMOD"
    grep -E '^godebug ' "$GOMOD" || true
    echo "require k8s.io/kubernetes $K8S_VERSION"
    # every staging module k8s.io/<m> => ./staging/... becomes k8s.io/<m> => k8s.io/<m>@v0.x.y
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$GOMOD" | awk -v v="$STAGING" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  say "wrapper go.mod has $(grep -c '^replace' go.mod) staging replaces"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  # tools.go pins the three commands before tidy, so tidy keeps k8s.io/kubernetes at $K8S_VERSION
  go mod tidy >&2
  grep -q "k8s.io/kubernetes $K8S_VERSION" go.mod || fail "go mod tidy moved k8s.io/kubernetes off $K8S_VERSION"
  MINOR="${K8S_VERSION#v1.}"; MINOR="${MINOR%%.*}"
  LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.buildDate=2026-01-01T00:00:00Z -X $p.gitTreeState=clean"
  done
  go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$LD" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler >&2
fi

begin "kwok $KWOK_VERSION"
if [ ! -x "$BIN/kwok" ]; then
  GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION" >&2
fi
KWOK_DIR=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
mkdir -p "$DIR/kwok-stages"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  src="$KWOK_DIR/kustomize/stage/$f"
  [ -f "$src" ] || src=$(ls "$KWOK_DIR/kustomize/stage/$(dirname "$f")"/*.yaml 2>/dev/null | grep "$(basename "$f" .yaml)" | head -1 || true)
  [ -n "$src" ] && [ -f "$src" ] || fail "kwok stage $f not found under $KWOK_DIR/kustomize/stage"
  cp "$src" "$DIR/kwok-stages/$(basename "$f")"
done
chmod -R u+w "$DIR/kwok-stages"

begin "istio CRDs $ISTIO_API_VERSION"
ISTIO_DIR=$(go mod download -json "istio.io/api@$ISTIO_API_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
cp "$ISTIO_DIR/kubernetes/customresourcedefinitions.gen.yaml" "$DIR/istio-crds.yaml"
chmod u+w "$DIR/istio-crds.yaml"

begin "verify"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl; do
  [ -x "$BIN/$b" ] || fail "missing $BIN/$b"
done
"$BIN/kube-apiserver" --version >&2
rm -rf "$DIR/work"
echo "$(( $(date +%s) - START ))" > "$DIR/build-seconds"
touch "$DIR/.complete"
say "built in $(cat "$DIR/build-seconds") s: $DIR"
echo "$DIR"
