# Two commands do all set-up on a fresh machine: `make run` (the app on the local stack) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
# The offline infrastructure checks (pycep-parser, checkov) get their own venv: checkov's pins clash with the app's.
VENV_IAC := .venv-iac
STAMP_IAC := $(VENV_IAC)/.installed

.PHONY: setup setup-iac test test-infra run up down demo chaos bench clean help

help:
	@echo "make run    set up, start the local stack and the local Functions host (Ctrl-C stops both)"
	@echo "make test   set up and run every test (unit, stand-ins, integration, end-to-end)"
	@echo "make demo   run a whole customer lifecycle unattended and print what each service holds"
	@echo "make up / make down   start / stop the local stack in the background"
	@echo "make setup  create .venv and install Python and npm packages (run by the others)"
	@echo "make test-infra   only the offline checks of infra/ (Bicep parse, checkov, roles, settings, queue)"
	@echo "make chaos  60 customer lifecycles under 10% faults, an Auth0 outage and 8 worker kills; fails on any"
	@echo "            duplicate, orphan, lost event or leaked secret (make chaos CHAOS_ARGS=--big: 200 and 16)"
	@echo "make bench  latency per profile, baselines, scale-out under shared limits, existing customers, cold start; writes docs/BENCHMARKS.md"

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP_IAC): requirements-iac.txt
	test -x $(VENV_IAC)/bin/python || $(PYTHON) -m venv $(VENV_IAC)
	$(VENV_IAC)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-iac.txt
	touch $@

setup-iac: $(STAMP_IAC)

# tests/infra runs pycep-parser and checkov from .venv-iac as subprocesses; setup-iac makes sure it exists.
test: setup setup-iac
	$(PY) -m pytest tests -q -p no:cacheprovider

test-infra: setup setup-iac
	$(PY) -m pytest tests/infra -q -p no:cacheprovider

# SERVICEBUS_CONNECTION / SERVICEBUS_NAMESPACE point `make up` and `make run` at the official emulator or a real
# namespace instead of the stand-in.
UP_ARGS := $(if $(SERVICEBUS_CONNECTION),--servicebus-connection "$(SERVICEBUS_CONNECTION)") \
           $(if $(SERVICEBUS_NAMESPACE),--servicebus-namespace "$(SERVICEBUS_NAMESPACE)")

up: setup
	$(PY) -m emulators up $(UP_ARGS)

down:
	$(PY) -m emulators down

run: setup
	@$(PY) -m emulators up $(UP_ARGS)
	@echo "send events from another terminal: .venv/bin/python -m devtools.send created --customer acme"
	@trap '$(PY) -m emulators down' EXIT; $(PY) -m funchost --settings local.settings.json

demo: setup
	$(PY) -m devtools.demo

# Figures, not assertions: prints one table with the targets beside it and rewrites docs/BENCHMARKS.md.
bench: setup
	$(PY) -m bench

# The defaults of python -m chaos are the done criterion: 10% faults per call, at least 5 kills, zero duplicates,
# orphans, lost events and secret leaks, the dead-letter replay converging; about a minute on two cores.
CHAOS_ARGS ?=
chaos: setup
	$(PY) -m chaos $(CHAOS_ARGS)

clean:
	-$(PY) -m emulators down 2>/dev/null
	rm -rf $(VENV) $(VENV_IAC) node_modules .localstack
