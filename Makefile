# Entry points a newcomer runs. Every target creates .venv itself when it is missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo report test test-slow test-cluster lint format bench lock clean-venv

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[all]"
	@touch $(STAMP)

## run: the main job: the offline smoke workflow (all datasets x variants x frameworks -> smoke/reports)
run: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores 2 --config profile=smoke

## report: Snakemake's HTML report of the smoke run
report: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --config profile=smoke --report smoke/report.html

## demo: every variant trains on a toy problem (the main job before the workflow landed)
demo: $(STAMP)
	$(BIN)/python -m pipelines.demo

## test: the fast test tier (CPU, minutes) plus lint; this is what CI runs
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

## test-cluster: the smoke workflow through a real single-node SLURM started here (root; apt installs
## slurm-wlm, munge, slurmdbd, mariadb-server when missing; 4-8 minutes; docs/cluster.md)
test-cluster: $(STAMP)
	@$(BIN)/python -c "import snakemake_executor_plugin_slurm" 2>/dev/null || \
		$(BIN)/python -m pip install -q -c requirements.lock snakemake-executor-plugin-slurm \
		snakemake-executor-plugin-slurm-jobstep
	$(BIN)/python tests/cluster/harness.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pipelines.bench trim

## lock: regenerate requirements.lock from the current environment
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' > requirements.lock

clean-venv:
	rm -rf $(VENV)
