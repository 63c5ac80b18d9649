# syntax=docker/dockerfile:1
# One image for both processes of the fleet:
#   docker run graphfleet lb        -> python -m lb      (proxy :8080, admin API and /metrics :8081)
#   docker run graphfleet worker    -> python -m worker  (:8000)
# Flags after the module name go to it: `docker run graphfleet lb --strategy round_robin`.
#
# The containers listen on all addresses, so the LB's admin API is not on loopback and the LB
# refuses to start without LB_ADMIN_TOKEN: pass one (`-e LB_ADMIN_TOKEN=...`) and give workers
# the same value as WORKER_LB_ADMIN_TOKEN.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: resolve nothing, install exactly what uv.lock pins into /opt/venv ----------------
FROM ${PYTHON_IMAGE} AS build
# The uv the project's lock was written with; it lives in this stage only.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# Dependencies first (their layer is reused while only the code changes). --locked installs
# what uv.lock pins and fails the build if the lock no longer matches pyproject.toml.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project
# Then the project itself, as a regular (non-editable) install: the final image needs only
# /opt/venv, not the sources.
COPY README.md ./
COPY common ./common
COPY lb ./lb
COPY worker ./worker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# --- runtime: the interpreter and the virtualenv, no uv, no compilers -----------------------
FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid/gid so Kubernetes can check runAsNonRoot.
RUN groupadd --system --gid 10001 graphfleet \
    && useradd --system --uid 10001 --gid graphfleet --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin graphfleet \
    && mkdir -p /data \
    && chown graphfleet:graphfleet /data
# Same path as in the build stage: the venv's scripts and pyvenv.cfg point there.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LB_HOST=0.0.0.0 \
    LB_ADMIN_HOST=0.0.0.0 \
    WORKER_HOST=0.0.0.0 \
    LB_DATA_DIR=/data/lb \
    WORKER_STORE=sqlite:////data/worker.sqlite
# /data holds the LB's registry file and the worker's SQLite store (when not on Postgres).
WORKDIR /data
USER 10001:10001
EXPOSE 8080 8081 8000
# Asks whichever process runs (the worker's /ok, the LB's admin /health), with the standard
# library: the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "common.healthcheck"]
ENTRYPOINT ["python", "-m"]
CMD ["lb"]
