# Every target is a thin call into the `triage` CLI or a script; `make run` and `make test` set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TRIAGE := $(VENV)/bin/triage
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run demo test test-fast lint format bench bench-serving train up down clean

install: $(STAMP)

# torch goes first and by exact version: pip then takes the local CPU wheel instead of several GB of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Trains on generated demo tickets when no model is live, then serves it on 127.0.0.1:8000.
run: install
	$(TRIAGE) demo --out models
	$(TRIAGE) serve --model models --create-keys

demo: install
	$(TRIAGE) demo --out models

# The browser and Prometheus tests use Debian's chromium and prometheus; installed here when missing.
test: install
	bash scripts/install_system_deps.sh
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: install
	$(VENV)/bin/ruff format src tests scripts
	$(VENV)/bin/ruff check --fix src tests scripts

# make train DATA=export.csv TEXT=subject,body LABEL=queue [ARGS="--priority priority --weights seed"]
train: install
	$(TRIAGE) train --data $(DATA) --text $(TEXT) --label $(LABEL) --out models $(ARGS)

bench: install
	$(PY) scripts/bench_accuracy.py

bench-serving: install
	$(PY) scripts/bench_serving.py --doc docs/benchmarks.md

# The full stack in Docker (api, redis, postgres, prometheus, grafana); the api mounts ./models, so train first.
up: demo
	docker compose up -d --build
	@echo "API http://127.0.0.1:8000  Prometheus http://127.0.0.1:9090  Grafana http://127.0.0.1:3000"

down:
	docker compose down

clean:
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
