# docsync serve: the long-running worker (listener, stream consumer, reconcile schedule, HTTP API).
#   docker build -t docsync .
#   docker run -e DOCSYNC_SERVE_API_KEYS=... -e DOCSYNC_METRICS_ENVIRONMENT=<stack> -p 8080:8080 docsync
# Dependencies are the pinned, hashed runtime lock shared with the Lambda artifact
# (deploy/requirements-lambda.txt, x86_64 wheels); moto and the dev tools are never installed.

# The lock pins x86_64 wheels (hashes included), so both stages are amd64 whatever the host.
# hadolint ignore=DL3029
FROM --platform=linux/amd64 python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/docsync
COPY deploy/requirements-lambda.txt /src/deploy/requirements-lambda.txt
RUN /opt/docsync/bin/pip install --require-hashes --no-deps -r /src/deploy/requirements-lambda.txt
COPY pyproject.toml README.md /src/
COPY engine /src/engine
COPY reconciler /src/reconciler
RUN /opt/docsync/bin/pip install --no-deps /src

# hadolint ignore=DL3029
FROM --platform=linux/amd64 python:3.12-slim
RUN groupadd --system --gid 10001 docsync \
    && useradd --system --uid 10001 --gid docsync --no-create-home --shell /usr/sbin/nologin docsync
COPY --from=build /opt/docsync /opt/docsync
ENV PATH=/opt/docsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DOCSYNC_SERVE_HOST=0.0.0.0 \
    DOCSYNC_SERVE_PORT=8080 \
    DOCSYNC_LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Liveness only (/healthz: the process answers); orchestrators should probe /readyz for traffic.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DOCSYNC_SERVE_PORT', '8080'), timeout=4)"]
# Exec form: docsync is PID 1 and gets SIGTERM itself; serve stops intake, finishes in-flight
# work and exits within shutdown_timeout_s (default 25 s). Give the container longer than that
# to stop (`docker stop -t 30`, ECS stopTimeout 30), or lower DOCSYNC_SERVE_SHUTDOWN_TIMEOUT_S.
STOPSIGNAL SIGTERM
CMD ["docsync", "serve"]
