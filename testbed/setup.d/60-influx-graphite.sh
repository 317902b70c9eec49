#!/usr/bin/env bash
# InfluxDB and Graphite (carbon + graphite-web) for the metric-provider tests
# (tests/unit/test_provider_influxdb_real.py, tests/e2e/test_provider_*.py). Debian's own
# packages; nothing is started here: the tests start each server on 127.0.0.1 on a free
# port with a data directory of their own (tests/providers_fakes/servers.py).
# Idempotent: seconds when the binaries are already there.
set -euo pipefail

ready() { command -v influxd >/dev/null 2>&1 && command -v carbon-cache >/dev/null 2>&1 &&
  [ -d /usr/lib/python3/dist-packages/graphite ]; }

if ready; then
  exit 0
fi
echo "[influx-graphite] installing influxdb, graphite-carbon and graphite-web (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends influxdb graphite-carbon graphite-web >/dev/null; }
if ! install; then
  echo "[influx-graphite] install failed; refreshing the package lists and retrying" >&2
  apt-get update -q >/dev/null
  install || { echo "[influx-graphite] could not install influxdb, graphite-carbon, graphite-web" >&2; exit 1; }
fi
ready || { echo "[influx-graphite] influxd, carbon-cache or graphite-web missing after install" >&2; exit 1; }
ver=$(dpkg-query -W -f='${Version}' influxdb)-$(dpkg-query -W -f='${Version}' graphite-web)
mkdir -p "${TESTBED_CACHE:-$HOME/.cache/rollouts-testbed}/influx-graphite-$ver"
echo "[influx-graphite] influxdb and graphite ready ($ver)" >&2
