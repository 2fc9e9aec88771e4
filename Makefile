# Zapflow — the Makefile is the interface. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
SRC := libs/*/src services/*/src tools/*/src

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@$(UV) --version 2>/dev/null | grep -q "$(UV_VERSION)" || $(PYTHON) -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

.PHONY: install
install: uv ## Create .venv with every workspace package (frozen lock)
	@$(UV) sync --all-packages --frozen --quiet

.PHONY: run
run: install ## Start NATS, PostgreSQL and all services locally (Ctrl-C stops)
	$(BIN)/zapflow up

.PHONY: fmt
fmt: install ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: lint
lint: install ## ruff format check, ruff, import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m zapflow.contracts.snapshots --check
	$(BIN)/python -m zapflow.contracts.asyncapi docs/asyncapi.json --check
	$(BIN)/zapflow nats auth-config --env-refs --check deploy/k8s/base/nats/auth.conf

.PHONY: typecheck
typecheck: install ## mypy --strict on every src/
	$(BIN)/mypy $(SRC) bench

.PHONY: unit
unit: install ## Fast tests only (no servers)
	$(BIN)/pytest -q -m "not integration and not e2e"

.PHONY: test
test: lint typecheck ## Lint, typecheck and every test level (starts its own NATS and PostgreSQL)
	$(BIN)/pytest -q -ra

.PHONY: bench
bench: install ## Benchmarks beside their references; writes bench/results.json
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq wrk >/dev/null 2>&1) \
		|| echo "wrk unavailable: using the Python load generator"
	$(BIN)/python -m bench $(BENCH_ARGS)

.PHONY: docs
docs: install ## Write docs/asyncapi.json from the contracts
	$(BIN)/python -m zapflow.contracts.asyncapi docs/asyncapi.json

.PHONY: clean
clean: ## Remove local state (.zapflow) and caches
	@# as root, PostgreSQL's data may live where its user can reach it, linked from .zapflow/pg
	@if [ -L .zapflow/pg ]; then rm -rf "$$(readlink -f .zapflow/pg)"; fi
	rm -rf .zapflow .pytest_cache .mypy_cache .ruff_cache
