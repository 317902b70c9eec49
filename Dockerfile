# The controller's image: `make image` builds it without a Docker daemon (docs/install.md);
# `docker build .` or `buildah bud .` work as usual where a registry can be reached.
#
# PYTHON_IMAGE: any Debian-based image with python3 >= 3.11 and its venv module; the
# default is the official slim one. `make image` passes a base built from Debian
# packages, because this project's machines cannot pull from a container registry.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# --- builder: every wheel (ours and our dependencies') built or fetched here ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rollouts ./rollouts
COPY analysis ./analysis
COPY testbed ./testbed
COPY crds ./crds
# An optional CA bundle as a build secret (a proxy that re-signs TLS); it never enters a
# layer: `--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt`
RUN --mount=type=secret,id=ca-bundle,required=false \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    /opt/build/bin/pip install -q build \
 && /opt/build/bin/python -m build --wheel --outdir /dist . \
 && /opt/build/bin/pip wheel -q --wheel-dir /wheels /dist/*.whl \
 && python3 -m venv --without-pip /opt/rollouts \
 && /opt/build/bin/pip --python /opt/rollouts/bin/python install -q --no-index \
        --find-links /wheels --compile rollouts \
 && /opt/rollouts/bin/rollouts version

# --- runtime: the virtualenv alone, run as a numeric non-root user --------------------
FROM ${PYTHON_IMAGE}
# a passwd entry for the numeric user (libraries that look the user up by uid find it)
RUN echo 'rollouts:x:65532:65532:rollouts:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'rollouts:x:65532:' >> /etc/group
COPY --from=builder /opt/rollouts /opt/rollouts
# read-only root filesystem: no bytecode written at run time (compiled at install), HOME
# on /tmp (an emptyDir in the chart; nothing is written there today)
ENV PATH=/opt/rollouts/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 65532:65532
EXPOSE 8443 8090
LABEL org.opencontainers.image.title="rollouts-controller" \
      org.opencontainers.image.description="Progressive delivery for Kubernetes: canary and blue-green rollouts judged by anytime-valid statistics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["rollouts"]
CMD ["controller", "--listen=0.0.0.0:8443"]
