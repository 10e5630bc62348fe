# The together-operator image: `together-operator run` on a slim Python base.
#
#   docker build -t together-operator:0.1.0 .
#   docker build --build-arg BASE_IMAGE=registry.example.com/python:3.11-slim -t together-operator .
#
# BASE_IMAGE is any Debian-like image with `python3` (3.11+) and its `venv` module, the same in both
# stages: the virtualenv built in the first stage links to the base's interpreter. The runtime stage adds
# only that virtualenv: no compiler, no pip cache, no build files. The process runs as a numeric non-root
# UID (so `runAsNonRoot` can verify it without /etc/passwd), needs no shell (exec-form entrypoint; the
# console script's shebang names the venv's python) and writes nothing to the root filesystem (bytecode
# is compiled at build time; HOME and temporary files go to /tmp, an emptyDir in the chart), so it runs
# with `readOnlyRootFilesystem: true`.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN python3 -m venv /opt/together-operator
# Dependencies come from constraints.txt, the same pins the test suite installs with.
COPY pyproject.toml constraints.txt README.md ./
# Only the operator's package: the simulator (operator/together_simulator) is for tests and demos, and
# its console script, installed from the same project, is removed with it.
COPY operator/together_operator/ operator/together_operator/
RUN /opt/together-operator/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt . \
    && /opt/together-operator/bin/pip uninstall --yes --disable-pip-version-check pip \
    && rm /opt/together-operator/bin/together-simulator \
    && /opt/together-operator/bin/together-operator --help >/dev/null \
    && ! /opt/together-operator/bin/python -c 'import together_simulator' 2>/dev/null

FROM ${BASE_IMAGE}
# For the OCI labels: --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) --build-arg SOURCE=<repo URL>
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="together-operator" \
      org.opencontainers.image.description="Kubernetes operator for Together AI dedicated inference endpoints" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/together-operator /opt/together-operator
ENV PATH=/opt/together-operator/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# 65532 is the conventional "nonroot" UID of distroless images; no passwd entry is needed.
USER 65532:65532
# /healthz for liveness and readiness probes (--health-port).
EXPOSE 8080
ENTRYPOINT ["/opt/together-operator/bin/together-operator", "run"]
