# django-signaltrail developer tasks. `make help` lists them.
#
# make test runs the whole suite three times: on SQLite, PostgreSQL and MariaDB
# (SIGNALTRAIL_TEST_DB). Servers: SIGNALTRAIL_POSTGRES_URL / SIGNALTRAIL_MARIADB_URL
# if set, else throw-away servers started by tests/servers.py, else that run's
# tests are skipped (an error instead under SIGNALTRAIL_TEST_REQUIRE_DB=1).
# Extra pytest arguments: make test PYTEST_ARGS="-x -k capture"

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Extra pytest arguments for the example shop's tests, run after the three DB runs.
EXAMPLE_PYTEST_ARGS ?=
TEST_DBS := sqlite postgres mariadb
LINT_PATHS := $(wildcard src tests example bench)

.PHONY: help venv .venv test lint demo bench clean distclean

help:
	@echo "make venv     create $(VENV) (Python 3.13) and install the package with the test group"
	@echo "make test     run the tests on $(TEST_DBS) (PYTEST_ARGS=... is passed to pytest)"
	@echo "make lint     ruff check and ruff format --check"
	@echo "make demo     run the example project"
	@echo "make bench    run the benchmarks"
	@echo "make clean    remove caches and build output (distclean: the venv too)"

venv .venv: $(STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || { \
	  echo "error: '$(PYTHON)' is $$($(PYTHON) --version 2>&1), Python 3.13 is needed" \
	       "(pyenv with .python-version, or make PYTHON=/path/to/python3.13)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstalls whenever pyproject.toml changes. pip >= 25.1 knows --group.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	$(VENV)/bin/python -m pip install --quiet -e . --group test
	@touch $@

# Runs all three, then fails if any failed; "skipped" = its database was unavailable.
# Exit 5 (no tests collected) counts as a failure: a run whose database is
# unavailable still collects its tests, as skipped, and exits 0.
test: $(STAMP)
	@failed=""; summary=""; passed=0; nfailed=0; skipped=0; log=$$(mktemp); \
	color=$$([ -t 1 ] && echo --color=yes); \
	for db in $(TEST_DBS); do \
	  echo "=== SIGNALTRAIL_TEST_DB=$$db ==="; \
	  SIGNALTRAIL_TEST_DB=$$db $(VENV)/bin/pytest $$color $(PYTEST_ARGS) 2>&1 | tee $$log; \
	  rc=$${PIPESTATUS[0]}; \
	  last=$$(grep -E "^=+ .*(passed|failed|skipped|error).* in [0-9.]+s" $$log | tail -n 1); \
	  n() { echo "$$last" | grep -oE "[0-9]+ $$1" | grep -oE "^[0-9]+" || echo 0; }; \
	  passed=$$((passed + $$(n passed))); skipped=$$((skipped + $$(n skipped))); \
	  nfailed=$$((nfailed + $$(n failed) + $$(n error))); \
	  if [ $$rc -ne 0 ]; then summary="$$summary $$db=FAILED(exit $$rc)"; failed="$$failed $$db"; \
	  elif grep -q "signaltrail: ALL TESTS SKIPPED" $$log; then summary="$$summary $$db=skipped"; \
	  else summary="$$summary $$db=ok"; fi; \
	done; \
	echo "=== example shop (example/tests, SQLite) ==="; \
	(cd example && ../$(VENV)/bin/pytest $$color $(EXAMPLE_PYTEST_ARGS)) 2>&1 | tee $$log; \
	rc=$${PIPESTATUS[0]}; \
	last=$$(grep -E "^=+ .*(passed|failed|skipped|error).* in [0-9.]+s" $$log | tail -n 1); \
	passed=$$((passed + $$(n passed))); skipped=$$((skipped + $$(n skipped))); \
	nfailed=$$((nfailed + $$(n failed) + $$(n error))); \
	if [ $$rc -ne 0 ]; then summary="$$summary example=FAILED(exit $$rc)"; failed="$$failed example"; \
	else summary="$$summary example=ok"; fi; \
	rm -f $$log; \
	echo "=== make test:$$summary ==="; \
	echo "total: $$passed passed, $$nfailed failed, $$skipped skipped"; \
	test -z "$$failed"

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# The example shop: its dependency group, its SQLite database, the demo data, then
# the web server with the background worker and outbox relay (rundemo); Ctrl-C stops all.
EXAMPLE_STAMP := $(VENV)/.installed-example
$(EXAMPLE_STAMP): pyproject.toml $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e . --group example
	@touch $@

demo: $(EXAMPLE_STAMP)
	cd example && ../$(VENV)/bin/python manage.py migrate --no-input
	cd example && ../$(VENV)/bin/python manage.py load_demo
	@echo "The shop:  http://127.0.0.1:8000/  log in as admin / signaltrail-demo (staff);"
	@echo "           alice and bob have the same password. Sent emails: http://127.0.0.1:8000/mail/"
	@echo "Ctrl-C stops the web server and the background worker and relay."
	cd example && ../$(VENV)/bin/python manage.py rundemo 127.0.0.1:8000

# The bench group: the packages compared with (auditlog, simple-history, pghistory)
# and matplotlib. Flags for bench/run.py: make bench BENCH_ARGS="--scale 0.1 --db sqlite"
bench: $(if $(wildcard bench/run.py),$(STAMP))
	@if [ -f bench/run.py ]; then \
	  $(VENV)/bin/python -m pip install --quiet -e . --group bench && \
	  $(VENV)/bin/python bench/run.py $(BENCH_ARGS); \
	else echo "The benchmarks are not there yet (no bench/run.py)."; fi

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
