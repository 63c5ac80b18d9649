# graphfleet — every target creates or refreshes the virtualenv it needs from uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.synced

.PHONY: install oracle run test test-unit lint fmt bench clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'uv>=0.5'

# Re-sync whenever the lock or the project metadata changes.
$(STAMP): $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --extra dev --quiet
	@touch $(STAMP)

install: $(STAMP)

# The oracle for the differential tests: the official in-memory LangGraph Server
# (`langgraph dev`) in its own virtualenv, so its pins never touch uv.lock. Tests only.
ORACLE_VENV := .oracle-venv
ORACLE_STAMP := $(ORACLE_VENV)/.synced
ORACLE_REQUIREMENTS := tests/oracle/requirements.txt

$(ORACLE_STAMP): $(UV) $(ORACLE_REQUIREMENTS)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(ORACLE_VENV)
	$(UV) pip install --quiet --python $(ORACLE_VENV)/bin/python -r $(ORACLE_REQUIREMENTS)
	@touch $(ORACLE_STAMP)

# LangGraph's JavaScript SDK for the differential tests of what a chat UI calls
# (tests/oracle/test_js_sdk.py), pinned by tests/oracle/js/package-lock.json. Without npm the
# install is skipped and those tests skip, saying why; under REQUIRE_SERVICES=1 (CI) a missing
# npm or a failed install fails here.
ORACLE_JS := tests/oracle/js
ORACLE_JS_STAMP := $(ORACLE_JS)/node_modules/.installed

$(ORACLE_JS_STAMP): $(ORACLE_JS)/package.json $(ORACLE_JS)/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
		if [ "$${REQUIRE_SERVICES:-}" = 1 ]; then \
			echo "npm not found and REQUIRE_SERVICES=1: cannot install $(ORACLE_JS)" >&2; exit 1; \
		fi; \
		echo "npm not found: the JavaScript SDK tests will skip (install Node.js 20+ and npm)"; \
	elif npm ci --prefix $(ORACLE_JS) --prefer-offline --no-audit --no-fund --loglevel=error; then \
		touch $@; \
	elif [ "$${REQUIRE_SERVICES:-}" = 1 ]; then \
		echo "npm ci failed in $(ORACLE_JS) and REQUIRE_SERVICES=1" >&2; exit 1; \
	else \
		echo "npm ci failed (offline?): the JavaScript SDK tests will skip"; \
	fi

oracle: $(ORACLE_STAMP) $(ORACLE_JS_STAMP)

# `graphfleet up` on the shipped example graphs: the LB on :8080 (admin, status page and
# metrics on :8081) running the fleet itself: the local autoscaler keeps 2 to $(WORKERS_MAX)
# worker processes on free loopback ports, sharing one SQLite store in .graphfleet/.
WORKERS_MAX ?= 4
run: $(STAMP)
	$(VENV)/bin/graphfleet up --config worker/examples/langgraph.json \
		--workers $${LB_AUTOSCALE_MIN:-2}:$${LB_AUTOSCALE_MAX:-$(WORKERS_MAX)}

test: $(STAMP) $(ORACLE_STAMP) $(ORACLE_JS_STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check common lb worker tests bench
	$(VENV)/bin/ruff format --check common lb worker tests bench
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format common lb worker tests bench
	$(VENV)/bin/ruff check --fix common lb worker tests bench

# Every scenario (small latency runs sse routing) into docs/benchmarks.md; one alone with
# BENCH_SCENARIOS=runs; short trial runs with BENCH_DURATION_S=3 BENCH_REPEATS=1 (bench/run.sh).
bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) $(ORACLE_VENV) $(ORACLE_JS)/node_modules .pytest_cache .mypy_cache .ruff_cache
