# The verifier service: slim Python base, non-root user, ledger on a volume, health check, API keys on.
# The first admin key: -e VERIFIER_ADMIN_KEY=... or -e VERIFIER_ADMIN_KEY_FILE=/run/secrets/...; without either,
# the service makes one at first start and prints it once (see `docker logs`). It listens on all interfaces
# because every route but /healthz, /readyz and /openapi.json needs a key (--insecure-no-auth is loopback-only).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VERIFIER_DB=/data/verifier.db
WORKDIR /app
COPY pyproject.toml README.md ./
COPY verifier ./verifier
COPY policies ./policies
RUN rm verifier/policies/default.toml && cp policies/default.toml verifier/policies/default.toml \
    && pip install . \
    && useradd --system --uid 10001 --home-dir /data verifier \
    && mkdir -p /data && chown verifier /data

USER verifier
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["verifier", "serve", "--host", "0.0.0.0", "--port", "8080", "--db", "/data/verifier.db"]
