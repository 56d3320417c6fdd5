# adserve developer commands. `make run` and `make test` work on a fresh machine: both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help dev run test unit lint typecheck format model openapi bench demo demo-pacing clean

help:
	@echo "make run       start the local stack on http://127.0.0.1:3000 (moto + the template's routes)"
	@echo "make test      lint, type-check, validate the template, run every test"
	@echo "make bench     measure latency, cold start, layer sizes; writes bench/results/latest.json"
	@echo "make demo      the retraining loop on the local stack with simulated listeners (writes demo-output/)"
	@echo "make demo-pacing  one simulated day of budget pacing through the production step (demo-output/pacing.png)"
	@echo "make model     retrain the bootstrap model (reproducible) into layers/model/bootstrap"
	@echo "make openapi   regenerate shared/adserve/openapi.json from the handlers' models"
	@echo "make validate  sam validate --lint and cfn-lint;  make build  sam build"

$(STAMP): pyproject.toml shared/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e "./shared[train]" -e ".[dev,bench]"
	touch $@

dev: $(STAMP)

run: $(STAMP)
	$(BIN)/adserve-local run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared/adserve devstack functions tests bench

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint typecheck validate
	$(BIN)/pytest -n 2 --dist loadfile

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

model: $(STAMP)
	$(BIN)/python -m adserve.training.bootstrap --out layers/model/bootstrap

openapi: $(STAMP)
	$(BIN)/adserve-local openapi > shared/adserve/openapi.json

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

demo: $(STAMP)
	$(BIN)/python -m devstack.demo $(ARGS)

demo-pacing: $(STAMP)
	nice $(BIN)/python -m devstack.demo_pacing $(ARGS)

clean:
	rm -rf $(VENV) .sam-venv .aws-sam .mypy_cache .ruff_cache .pytest_cache

include make/sam.mk
