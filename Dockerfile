# syntax=docker/dockerfile:1
# Haven: the Flask API and the web client it serves, under gunicorn, as a non-root user.
# Runs with a read-only root filesystem: nothing is written into the image at run time
# (temporary files go to a tmpfs, gunicorn's heartbeat to /dev/shm). Keys and secrets are
# mounted at run time and never copied in (see .dockerignore and docs/deploy.md).

# --- web client: npm ci && npm run build, which writes web/dist/ -----------------------
FROM node:20.20.2-bookworm-slim AS web
WORKDIR /src/web
# The manifest and lock first, so the dependency layer is reused while sources change.
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
# A production image without its web client would be broken: fail the build instead.
RUN npm run build && test -d dist

# --- Python environment, from uv.lock ----------------------------------------------------
FROM python:3.11.14-slim-bookworm AS venv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.8
# The same path as in the final image: the project is installed editable into .venv, and
# the .pth file that points at /app must stay true there.
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY vault/ vault/
RUN uv sync --frozen --no-dev \
    && .venv/bin/python -m compileall -q vault

# --- final image ---------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HAVEN_KEYS_DIR=/run/haven/keys \
    HAVEN_BIND=0.0.0.0:8000
RUN groupadd --system --gid 10001 haven \
    && useradd --system --uid 10001 --gid haven --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin haven
WORKDIR /app
# Owned by root and read-only to the app user: the code cannot be changed by the process.
COPY --from=venv /app/.venv /app/.venv
COPY --from=venv /app/vault /app/vault
COPY --from=web /src/web/dist /app/web/dist
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HAVEN_BIND', ':8000').rsplit(':', 1)[1]; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
# The control socket would need a writable home; operators use `docker compose restart`.
CMD ["gunicorn", "-c", "vault/gunicorn_conf.py", "--no-control-socket", "vault.wsgi:app"]
