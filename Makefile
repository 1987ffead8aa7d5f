# Haven — `make serve` and `make test` install what they need, idempotently.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS ?= $(HOME)/.cache/haven-tools
UV_VERSION := 0.13.8
UV := $(TOOLS)/uv-$(UV_VERSION)/bin/uv
# MinIO community edition, last commit of the unmaintained repository (see docs/deploy.md).
MINIO_COMMIT := 7aac2a2c5b7c882e68c1ce017d8256be2feea27f
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO := $(TOOLS)/minio-$(shell echo $(MINIO_COMMIT) | cut -c1-8)/minio
# The key-log witness (C2SP tlog-witness) that tests and `make serve` run (docs/deploy.md).
LITEWITNESS_VERSION := v0.6.1
LITEWITNESS := $(TOOLS)/litewitness-$(LITEWITNESS_VERSION)/litewitness
VENV := .venv
PY := $(VENV)/bin/python
export HAVEN_MINIO_BIN := $(MINIO)
# Python may keep compiled modules (__pycache__, ignored by git): a machine that says
# otherwise in its environment compiled every module again in each Python process a test run
# starts: xdist workers, gunicorn and app processes, CLI runs (about 0.5 s of CPU each,
# measured 2026-12-01).
unexport PYTHONDONTWRITEBYTECODE
export HAVEN_LITEWITNESS_BIN := $(LITEWITNESS)

.PHONY: help serve test bench contract lint deps system-deps venv minio litewitness web

help:
	@echo "make serve     install what is missing, start Haven on http://127.0.0.1:8000"
	@echo "make test      install what is missing, run every check and test"
	@echo "make bench     measure speed and memory (JSON lines), after \`make contract\`"
	@echo "make contract  the OpenAPI contract test with every example (make test runs fewer)"

$(UV):
	python3 -m venv $(TOOLS)/uv-$(UV_VERSION)
	$(TOOLS)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3 --quiet
	touch $@

venv: $(VENV)/.synced

$(MINIO):
	scripts/build-minio $(MINIO_COMMIT) $(MINIO_VERSION) $(MINIO)

minio: $(MINIO)

$(LITEWITNESS):
	scripts/build-litewitness $(LITEWITNESS_VERSION) $(LITEWITNESS)

litewitness: $(LITEWITNESS)

system-deps:
	scripts/system-deps

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

web/dist/index.html: web/node_modules/.package-lock.json $(shell find web/src web/scripts -type f 2>/dev/null)
	cd web && npm run build --silent

web: web/dist/index.html

deps: system-deps venv minio litewitness web

serve: venv minio litewitness web
	HAVEN_SECURE_COOKIES=$${HAVEN_SECURE_COOKIES:-false} \
	HAVEN_DATABASE_URL=$${HAVEN_DATABASE_URL:-sqlite:///$(CURDIR)/var/haven.db} \
	$(VENV)/bin/haven serve --embedded-minio --embedded-witness

lint: venv
	$(VENV)/bin/ruff check vault tests
	$(VENV)/bin/ruff format --check vault tests
	$(VENV)/bin/mypy
	scripts/check-deploy

# Independent tests run in parallel workers, each with its own PostgreSQL, Redis, MinIO and
# witness; the slowest 20 are listed at the end so the next person sees where the time goes.
# On 2 cores, 4 workers ran a CSRF slice slower than 3 (443 s against 311-377 s, 2026-11-30).
TEST_WORKERS ?= 3

test: deps lint
	cd web && npm test --silent
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal --durations=20

bench: deps contract
	$(PY) -m tests.bench

# The contract test with the full example count (`make test` runs fewer per operation).
contract: deps
	HAVEN_CONTRACT_EXAMPLES=4 $(VENV)/bin/pytest -p no:xdist -q tests/integration/test_contract.py
