# Two commands do all set-up on a fresh machine: `make run` (the app on the local stack) and `make test`.
SHELL := /bin/bash
# The app and every tool run on Python 3.13 (azure-functions-runtime needs it). devtools/find-python finds one
# (PYTHON=..., python3.13 on PATH, pyenv's or uv's 3.13) without touching the global Python, or says what to install.
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
# The offline infrastructure checks (pycep-parser, checkov) get their own venv: checkov's pins clash with the app's.
VENV_IAC := .venv-iac
STAMP_IAC := $(VENV_IAC)/.installed

.PHONY: setup setup-iac test test-infra fuzz backfill-big run host up down reset show demo chaos bench clean help

help:
	@echo "make run    set up, start the local stack (if it is not running) and the local Functions host;"
	@echo "            Ctrl-C stops the host only: the stack keeps its queue, dead letters and state"
	@echo "make host   restart only the app (after a config change) on the running stack"
	@echo "make show   what the stand-ins hold (Auth0 apps, Key Vault secrets, APIM entries, queue counts)"
	@echo "make test   set up and run every test (unit, stand-ins, integration, end-to-end)"
	@echo "make fuzz   the property tests (tests/property) with many more examples: HYPOTHESIS_PROFILE=long"
	@echo "make backfill-big   the backfill end-to-end test at full size: 500 rows, 3 bad, 20 made by hand"
	@echo "make demo   run a whole customer lifecycle unattended and print what each service holds"
	@echo "make up / make down   start / stop the local stack in the background (its state is kept on disk)"
	@echo "make reset  stop the local stack and forget its kept state (a fresh start)"
	@echo "make setup  create .venv and install Python and npm packages (run by the others)"
	@echo "make clean  make reset, and remove .venv, node_modules and .localstack"
	@echo "make test-infra   only the offline checks of infra/ (Bicep parse, checkov, roles, settings, queue)"
	@echo "make chaos  3 hosts on one queue, 100 customer lifecycles, 10% faults, an Auth0 outage, 8 kills and 4 stalls"
	@echo "            longer than a claim; fails on any duplicate, orphan, lost or half-provisioned customer or leaked"
	@echo "            secret (CHAOS_ARGS='--hosts 2' and the like change it; python -m chaos --help)"
	@echo "make bench  latency per profile, baselines, scale-out under shared limits, existing customers, cold start; writes docs/BENCHMARKS.md"

setup: $(STAMP_PY) $(STAMP_NPM)

# A .venv made by another interpreter (the project ran on 3.11 before) is made again, not patched. The installs say
# what they do as they go (devtools/install_progress.py condenses pip's output into a line per stage and one every
# 15 s), so a first set-up on a slow network shows as slow, not stuck.
$(STAMP_PY): requirements.txt requirements-dev.txt funchost/rpc/function_rpc.proto
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
	  python=$$(devtools/find-python) || exit 1; \
	  echo "make: creating $(VENV) with $$python"; rm -rf $(VENV); "$$python" -m venv $(VENV) || exit 1; fi
	@echo "make: installing the Python packages of requirements-dev.txt into $(VENV)"
	@$(PY) devtools/install_progress.py -r requirements-dev.txt
	@echo "make: compiling the local host's FunctionRpc stubs (funchost/rpc)"
	@$(PY) -m funchost.rpc >/dev/null
	@touch $@

$(STAMP_NPM): package.json package-lock.json
	@echo "make: installing the npm packages of package-lock.json into node_modules (npm ci, under a minute)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMP_IAC): requirements-iac.txt
	@test -x $(VENV_IAC)/bin/python || { python=$$(devtools/find-python) && "$$python" -m venv $(VENV_IAC); }
	@echo "make: installing the infrastructure checks of requirements-iac.txt into $(VENV_IAC)"
	@$(VENV_IAC)/bin/python devtools/install_progress.py -r requirements-iac.txt
	@touch $@

setup-iac: $(STAMP_IAC)

# tests/infra runs pycep-parser and checkov from .venv-iac as subprocesses; setup-iac makes sure it exists. The
# three installs are independent, so they run side by side. The tests spend most of their time waiting on the
# stand-ins, so two workers (pytest-xdist; a file's tests stay together, with their session's stack) halve the run.
test:
	@$(MAKE) --no-print-directory -j3 setup setup-iac
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2 --dist loadfile

test-infra: setup setup-iac
	$(PY) -m pytest tests/infra -q -p no:cacheprovider

# The Hypothesis tests of the parser and the ops tool's output with 5,000 examples each instead of 200 (some
# minutes); failures found are kept in .hypothesis/ and tried first on the next run.
fuzz: setup
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/property -q -p no:cacheprovider

# The backfill end-to-end test at the size of the fleet issue (make test runs it with 30 rows, 5 by hand).
backfill-big: setup
	BACKFILL_ROWS=500 BACKFILL_BY_HAND=20 $(PY) -m pytest tests/e2e/test_backfill.py -q -p no:cacheprovider

# SERVICEBUS_CONNECTION / SERVICEBUS_NAMESPACE point `make up` and `make run` at the official emulator or a real
# namespace instead of the stand-in.
UP_ARGS := $(if $(SERVICEBUS_CONNECTION),--servicebus-connection "$(SERVICEBUS_CONNECTION)") \
           $(if $(SERVICEBUS_NAMESPACE),--servicebus-namespace "$(SERVICEBUS_NAMESPACE)")

# The stack keeps its state (the queue and its dead letters, the stand-ins' objects, Azurite's tables) in
# .localstack/state and .localstack/azurite across restarts; `make reset` forgets it. `make run` and `make host` never
# stop the stack, so a dead-lettered message is still there after the app is fixed and restarted, and after a
# `make down` / `make up` too.
up: setup
	$(PY) -m emulators up --persist $(UP_ARGS)

down:
	$(PY) -m emulators down

reset: setup
	$(PY) -m emulators reset

show: setup
	@$(PY) -m emulators show

# One host per checkout: a second `make run` or `make host` refuses and names the running one (.localstack/host.lock).
run: setup
	@$(PY) -m devtools.run $(UP_ARGS)

host: setup
	@$(PY) -m devtools.run --host-only

demo: setup
	$(PY) -m devtools.demo

# Figures, not assertions: prints one table with the targets beside it and rewrites docs/BENCHMARKS.md.
bench: setup
	$(PY) -m bench

# The scale-out run is the done criterion: 3 host processes, 100 customers, 10% faults per call, 8 kills, 4 stalls
# longer than a claim, zero duplicates, orphans, lost events, half-provisioned customers and secret leaks, the
# dead-letter replay converging. CHAOS_ARGS adds to or overrides it (python -m chaos --help).
CHAOS_ARGS ?=
chaos: setup
	$(PY) -m chaos --full $(CHAOS_ARGS)

clean:
	-$(PY) -m emulators down 2>/dev/null
	rm -rf $(VENV) $(VENV_IAC) node_modules .localstack
