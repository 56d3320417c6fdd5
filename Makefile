# adserve developer commands. `make run` and `make test` work on a fresh machine: both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help dev run test check unit lint typecheck format model openapi bench docs cost demo demo-pacing lock clean

help:
	@echo "make run       start the local stack on http://127.0.0.1:3000 (moto + the template's routes)"
	@echo "make test      lint, type-check, validate the template, run every test incl. the slow end-to-end ones (CI)"
	@echo "make check     lint, type-check, unit + integration tests without the slow ones (while developing)"
	@echo "make bench     measure latency, cold start, layer sizes; writes bench/results/latest.json and the docs' figures"
	@echo "make docs      rewrite the benchmark figures in the docs from bench/results/latest.json"
	@echo "make cost      dollars per million decisions from measured usage and list prices (bench/results/cost.json)"
	@echo "make lock      refresh the locks (requirements/dev.lock, the layers' and Retrain's) to the newest allowed"
	@echo "make demo      the retraining loop on the local stack with simulated listeners (writes demo-output/)"
	@echo "make demo-pacing  one simulated day of budget pacing through the production step (demo-output/pacing.png)"
	@echo "make model     retrain the bootstrap model (reproducible) into layers/model/bootstrap"
	@echo "make openapi   regenerate shared/adserve/openapi.json from the handlers' models"
	@echo "make validate  sam validate --lint, cfn-lint and make/check_versions.py;  make build  sam build"

# Only what requirements/dev.lock pins (exact versions, hashes checked), then our two packages on top.
$(STAMP): requirements/dev.lock pyproject.toml shared/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e ./shared -e .
	$(BIN)/pip check
	touch $@

dev: $(STAMP)

run: $(STAMP)
	$(BIN)/adserve-local run $(ARGS)

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

check: lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

model: $(STAMP)
	$(BIN)/python -m adserve.training.bootstrap --out layers/model/bootstrap

openapi: $(STAMP)
	$(BIN)/adserve-local openapi > shared/adserve/openapi.json

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.docs

docs: $(STAMP)
	$(BIN)/python -m bench.docs

cost: $(STAMP)
	$(BIN)/python -m bench.cost $(ARGS)
	$(BIN)/python -m bench.docs

demo: $(STAMP)
	$(BIN)/python -m devstack.demo $(ARGS)

# Resolves every *.in into its lock: exact versions and sha256 hashes of every file of each version. The dev
# lock is for CPython 3.11 on Linux x86_64; the layers' and Retrain's for Lambda (python3.13, x86_64,
# manylinux wheels only). SharedLayer's is held to the dev lock's versions (the layer ships what the tests ran),
# numpy and protobuf are left out of Retrain's (ModelLayer has them, pinned by ModelLayer's lock).
LOCK = $(BIN)/uv pip compile --quiet --upgrade --generate-hashes --custom-compile-command "make lock"
LAMBDA = --python-version 3.13 --python-platform x86_64-manylinux_2_28 --only-binary :all:

lock: $(STAMP)  # needs the venv only for uv
	$(LOCK) requirements/dev.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--no-emit-package adserve --no-emit-package adserve-devstack -o requirements/dev.lock
	$(LOCK) shared/layer.in $(LAMBDA) -c requirements/dev.lock -o shared/layer.lock
	$(LOCK) layers/model/layer.in $(LAMBDA) -o layers/model/layer.lock
	$(LOCK) functions/retrain/requirements.in $(LAMBDA) -c layers/model/layer.lock \
		--no-emit-package numpy --no-emit-package protobuf -o functions/retrain/requirements.lock

demo-pacing: $(STAMP)
	nice $(BIN)/python -m devstack.demo_pacing $(ARGS)

clean:
	rm -rf $(VENV) .sam-venv .aws-sam .mypy_cache .ruff_cache .pytest_cache

include make/sam.mk
