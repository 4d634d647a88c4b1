# Vajra — every target bootstraps what it needs on first use (see README).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV   ?= .venv
PY     := $(VENV)/bin/python
FLAVOUR := $(if $(filter 1,$(VAJRA_OPTIMIZE)),pgo,quick)
STAMP  := $(VENV)/.installed-$(FLAVOUR)
DASH_STAMP := dashboard/node_modules/.installed
# VAJRA_OPTIMIZE=1 uses a PGO + LTO build of the interpreter (first build ~14 min, not ~2).
BOOTSTRAP := scripts/bootstrap-python $(if $(filter 1,$(VAJRA_OPTIMIZE)),--enable-optimizations,)
# pytest -n is not used: the ring stress tests pin to both CPUs and want them to themselves.
PYTEST_ARGS ?=

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

# The free-threaded interpreter (cached in ~/.cache/vajra) and a virtualenv on it with the
# pinned development dependencies. Re-runs only when pyproject.toml or the lock changes.
$(STAMP): pyproject.toml requirements/dev.lock scripts/bootstrap-python
	@set -euo pipefail; \
	py="$$($(BOOTSTRAP))"; \
	if [ ! -x "$(PY)" ] || [ "$$($(PY) -c 'import sys;print(sys._base_executable)' 2>/dev/null)" != "$$("$$py" -c 'import sys;print(sys.executable)')" ]; then \
	  rm -rf "$(VENV)"; "$$py" -m venv "$(VENV)"; \
	fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check --prefer-binary -r requirements/dev.lock; \
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .; \
	rm -f $(VENV)/.installed-*; touch "$@"

venv: $(STAMP)  ## create .venv on free-threaded CPython 3.13t

run: $(STAMP) dashboard/dist/index.html  ## doctor, then the engine on its embedded default, the monitor and cockpit beside it (http://127.0.0.1:8787)
	$(PY) -m vajra doctor
	@set -e; $(PY) -m vajra monitor --port $${MONITOR_PORT:-8787} & mon=$$!; \
	trap 'kill $$mon 2>/dev/null; wait $$mon 2>/dev/null || true' EXIT; \
	$(PY) -m vajra run --duration $${SECONDS_TO_RUN:-60}

test: $(STAMP) $(DASH_STAMP) dashboard/dist/index.html  ## the whole test suite (what CI runs): pytest (the cockpit end to end in Chromium included), then the cockpit's unit tests
	@scripts/ensure-chromium
	$(PY) -m pytest $(PYTEST_ARGS)
	cd dashboard && npm test

# The cockpit's npm packages (exact versions from package-lock.json; nothing downloads a browser:
# the browser tests use Debian's chromium). Re-runs when the manifest or the lock changes.
$(DASH_STAMP): dashboard/package.json dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	touch $@

dashboard/dist/index.html: $(DASH_STAMP) dashboard/index.html $(shell find dashboard/src -type f 2>/dev/null)
	cd dashboard && npm run build

dashboard: dashboard/dist/index.html  ## build the cockpit into dashboard/dist (the monitor serves it at /)

bench: $(STAMP)  ## IPC, signal-path and execution benchmarks; writes bench/*-latest.{json,txt}
	$(PY) -m vajra bench ipc --json > bench/ipc-latest.json.tmp
	mv bench/ipc-latest.json.tmp bench/ipc-latest.json
	$(PY) -m vajra bench render bench/ipc-latest.json | tee bench/ipc-latest.txt
	$(PY) -m vajra bench signals --json > bench/signals-latest.json.tmp
	mv bench/signals-latest.json.tmp bench/signals-latest.json
	$(PY) -m vajra bench render bench/signals-latest.json | tee bench/signals-latest.txt
	$(PY) -m vajra bench execution --json > bench/execution-latest.json.tmp
	mv bench/execution-latest.json.tmp bench/execution-latest.json
	$(PY) -m vajra bench render bench/execution-latest.json | tee bench/execution-latest.txt
	$(PY) -m vajra bench e2e --json > bench/e2e-latest.json.tmp
	mv bench/e2e-latest.json.tmp bench/e2e-latest.json
	$(PY) -m vajra bench render bench/e2e-latest.json | tee bench/e2e-latest.txt
	$(PY) -m vajra bench monitor --json > bench/monitor-latest.json.tmp
	mv bench/monitor-latest.json.tmp bench/monitor-latest.json
	$(PY) -m vajra bench render bench/monitor-latest.json | tee bench/monitor-latest.txt

bench-quick: $(STAMP)  ## the same, fewer messages
	$(PY) -m vajra bench ipc --quick

lint: $(STAMP)  ## ruff and mypy --strict
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests
	$(PY) -m mypy

fmt: $(STAMP)  ## apply ruff formatting and safe fixes
	$(PY) -m ruff check --fix src tests
	$(PY) -m ruff format src tests

clean:  ## remove the virtualenv and caches (keeps the cached interpreter)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build src/*.egg-info dashboard/node_modules dashboard/dist

.PHONY: help venv run test bench bench-quick lint fmt clean dashboard
