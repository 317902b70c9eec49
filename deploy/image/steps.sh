#!/bin/sh
# The builder stage's steps, in one place for both builds of the image: the Dockerfile's
# RUN lines call them, and so does `make image` (deploy/image/build.sh, in a chroot of a
# Debian root filesystem). So both builds make the same /opt/rollouts, /app and /etc/passwd.
#
#   steps.sh tools        a build venv (/opt/build) with build and the build backend
#   steps.sh deps DIR     our dependencies (DIR/pyproject.toml) as wheels in /wheels, installed
#                         and compiled into the runtime venv /opt/rollouts
#   steps.sh user         the numeric user 65532 in /etc/passwd and /etc/group
#   steps.sh app DIR      our wheel, built from DIR and installed into /opt/rollouts under the
#                         staging root /app (the image's last, thin layer: COPY /app/ /)
#
# PIP_CERT may name a CA bundle (a proxy that re-signs TLS); only deps and tools fetch.
set -eu
PY=python3

case "${1:-}" in
tools)
  "$PY" -m venv /opt/build
  # the build backend of pyproject.toml's [build-system]: `app` builds without isolation,
  # offline
  /opt/build/bin/pip install -q build 'hatchling>=1.24'
  ;;
deps)
  src=${2:?steps.sh deps DIR}
  /opt/build/bin/python - "$src/pyproject.toml" >/tmp/requirements.txt <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
EOF
  /opt/build/bin/pip wheel -q --wheel-dir /wheels -r /tmp/requirements.txt
  "$PY" -m venv --without-pip /opt/rollouts
  /opt/build/bin/pip --python /opt/rollouts/bin/python install -q --no-index \
    --find-links /wheels --compile -r /tmp/requirements.txt
  ;;
user)
  grep -q '^rollouts:' /etc/passwd \
    || echo 'rollouts:x:65532:65532:rollouts:/nonexistent:/usr/sbin/nologin' >>/etc/passwd
  grep -q '^rollouts:' /etc/group || echo 'rollouts:x:65532:' >>/etc/group
  ;;
app)
  src=${2:?steps.sh app DIR}
  rm -rf /dist /app
  /opt/build/bin/python -m build -q --wheel --no-isolation --outdir /dist "$src" \
    >/tmp/build.log 2>&1 || { cat /tmp/build.log >&2; exit 1; }
  # --no-deps: the dependencies are already in /opt/rollouts (deps, from the same
  # pyproject.toml); the scripts' interpreter is /opt/rollouts/bin/python
  /opt/build/bin/pip --python /opt/rollouts/bin/python install -q --no-index --no-deps \
    --no-compile --no-warn-script-location --root /app /dist/*.whl
  # compiled as installed at /opt/rollouts (a read-only root filesystem writes no bytecode)
  /opt/rollouts/bin/python -m compileall -q -s /app -p / /app/opt/rollouts >/dev/null
  PYTHONPATH=$(echo /app/opt/rollouts/lib/python3*/site-packages) \
    /opt/rollouts/bin/python -m rollouts.cli.main version
  ;;
*)
  echo "usage: steps.sh tools | deps DIR | user | app DIR" >&2
  exit 2
  ;;
esac
