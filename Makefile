# Two commands matter: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TESTBED_ENV := $(HOME)/.cache/rollouts-testbed/current.env

.PHONY: help venv setup test test-unit test-e2e lint demo demo-ci testbed testbed-down bench-analysis bench-controller clean image krew

help:
	@echo "make demo        - build/start the test bed, run the controller and a canary rollout end to end"
	@echo "make test        - lint, unit tests and end-to-end tests on the local test bed"
	@echo "make testbed     - start the test bed and leave it running; make testbed-down stops it"
	@echo "make bench-analysis / bench-controller - benchmarks, figures written to docs/"
	@echo "make image       - build the controller image into an OCI archive, no Docker daemon (docs/install.md)"
	@echo "make krew        - the kubectl-rollouts krew archive and its manifest (docs/install.md)"

$(STAMP): pyproject.toml
	@echo "[make] creating virtualenv $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

setup: venv
	./testbed/setup.sh >/dev/null
	@for f in testbed/setup.d/*.sh; do [ -e "$$f" ] || continue; bash "$$f" || exit 1; done

lint: venv
	$(VENV)/bin/ruff check rollouts analysis testbed tests benchmarks
	$(VENV)/bin/mypy

test-unit: venv
	$(VENV)/bin/pytest tests/unit -q

test-e2e: setup
	$(VENV)/bin/pytest tests/e2e -q

test: setup lint
	$(PY) -m testbed.run_tests

testbed: setup
	$(PY) -m testbed up

testbed-down: venv
	$(PY) -m testbed down

demo: setup
	$(PY) -m rollouts.demo

demo-ci: setup
	$(PY) -m rollouts.demo --non-interactive

bench-analysis: venv
	$(PY) -m benchmarks.analysis_benchmark

bench-controller: setup
	$(PY) -m benchmarks.controller_benchmark

# the Dockerfile's stages from a Debian root filesystem, no daemon; minutes cold, then seconds
image:
	./deploy/image/build.sh

# the plugin archive (launcher + wheels from the image's builder stage) and its krew manifest
krew: venv
	./deploy/krew/build.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
