# The controller's image: `make image` builds it without a Docker daemon (docs/install.md);
# `docker build .` or `buildah bud .` work as usual where a registry can be reached.
#
# PYTHON_IMAGE: any Debian-based image with python3 >= 3.11 and its venv module; the
# default is the official slim one. `make image` builds the same stages from a Debian root
# filesystem (this project's machines cannot pull from a container registry): it runs
# deploy/image/steps.sh in a chroot and writes each COPY of the last stage as a layer, so
# the last stage may hold only COPY --from=builder and metadata (ENV, USER, EXPOSE, LABEL,
# ENTRYPOINT, CMD, WORKDIR); build.sh refuses anything else.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# --- builder: every wheel (ours and our dependencies') built or fetched here ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY deploy/image/steps.sh /usr/local/bin/rollouts-image-steps
WORKDIR /src
# the dependencies first: their layers stay cached while only our sources change
COPY pyproject.toml README.md ./
# An optional CA bundle as a build secret (a proxy that re-signs TLS); it never enters a
# layer: `--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt`
RUN --mount=type=secret,id=ca-bundle,required=false \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    sh /usr/local/bin/rollouts-image-steps tools \
 && sh /usr/local/bin/rollouts-image-steps deps /src \
 && sh /usr/local/bin/rollouts-image-steps user
COPY rollouts ./rollouts
COPY analysis ./analysis
COPY testbed ./testbed
COPY crds ./crds
RUN sh /usr/local/bin/rollouts-image-steps app /src

# --- runtime: the virtualenv alone, run as a numeric non-root user --------------------
FROM ${PYTHON_IMAGE}
# a passwd entry for the numeric user (libraries that look the user up by uid find it)
COPY --from=builder /etc/passwd /etc/group /etc/
# our dependencies, then our own package: a thin last layer
COPY --from=builder /opt/rollouts /opt/rollouts
COPY --from=builder /app/ /
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
