# The course's commands. `make help` lists them; README.md explains them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
WEEK ?= 1
# One task of week WEEK only, e.g. make check WEEK=1 TASK=2 (empty: the whole week; not read
# from the environment, where TASK may mean something else)
TASK :=
# JupyterLab's port and extra options, e.g. make lab LAB_PORT=8890 LAB_ARGS=--no-browser
LAB_PORT ?= 8888
LAB_ARGS ?=
# Extra options of a benchmark, e.g. make bench-serve BENCH_ARGS="--duration 30"
BENCH_ARGS ?=
# The monitoring files `make alerts` checks (the reference: MONITORING=solutions/monitoring)
MONITORING ?= labs/monitoring
# Debian's prometheus gives promtool and the server; recommended packages (node-exporter) are not needed.
INSTALL_PROMETHEUS := command -v promtool >/dev/null || $(SUDO) apt-get install -y --no-install-recommends prometheus \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus; }
# Extra options of `make lock`, e.g. make lock LOCK_ARGS=--upgrade (re-resolve every pin)
LOCK_ARGS ?=
IS_ROOT := $(filter 0,$(shell id -u))
# apt-get needs root; anyone else goes through sudo.
SUDO := $(if $(IS_ROOT),,sudo)
# Jupyter refuses to start as root (containers, CI runners) unless told it may.
LAB_ROOT := $(if $(IS_ROOT),--allow-root)
# Telemetry of every tool stays off: autograder/telemetry.env is the one definition.
TELEMETRY_ENV := autograder/telemetry.env
include $(TELEMETRY_ENV)
export $(shell sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' $(TELEMETRY_ENV))
export PYTEST_DISABLE_PLUGIN_AUTOLOAD := 1
PYTEST := $(BIN)/python -m pytest -p xdist -p pytest_timeout

.PHONY: help install demo test test-slow test-all lint format lab check release release-check lock \
	clean bench-grade bench-serve bench-validate bench-check bench-monitor alerts

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements/lock.txt
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv with the locked dependencies and the `course` command
	@$(MAKE) --no-print-directory sandbox-setup || echo "note: bubblewrap is missing: \`course grade\` refuses untrusted work until \`make sandbox-setup\` works"

# The wall `course grade` puts around students' code (autograder/sandbox.py) is Debian's bubblewrap.
sandbox-setup: ## install bubblewrap (bwrap), the wall around students' code in `course grade`
	@command -v bwrap >/dev/null || $(SUDO) apt-get install -y --no-install-recommends bubblewrap \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends bubblewrap; }
	@bwrap --version

demo: $(STAMP) ## run the reference pipeline, weeks 1-7: train, DVC, MLflow, gates, serving, drift, Locust + capacity, k8s, canary, moto
	bash scripts/demo.sh $(BIN)/python

# Extra pytest options of the test targets, e.g. make test PYTEST_ARGS="--durations=10"
PYTEST_ARGS ?=

test: $(STAMP) ## the fast tier (6 min on 2 cores): unit, component, both-ways and golden grading
	-$(INSTALL_PROMETHEUS)  # week 6's hidden tests run promtool
	$(PYTEST) -n 2 --dist loadfile --no-loadscope-reorder -m "not slow" $(PYTEST_ARGS) tests

test-slow: $(STAMP) ## the slow tier: lessons under nbval, full hostile batch, servers, a browser
	-command -v chromium >/dev/null || $(SUDO) apt-get install -y chromium \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	-$(INSTALL_PROMETHEUS)
	$(PYTEST) -n 2 --dist loadgroup --no-loadscope-reorder -m "slow and not alone" $(PYTEST_ARGS) tests
	$(PYTEST) -m "slow and alone" $(PYTEST_ARGS) tests  # tests that load the machine on purpose

test-all: test test-slow ## both tiers, as CI runs them

lint: $(STAMP) ## ruff, hadolint, the workflow and compose schemas
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint solutions/docker/*.Dockerfile docker/*.Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml \
		autograder/templates/*.yml solutions/.github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec solutions/compose.yaml

format: $(STAMP) ## format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# jupyter-config/ holds the course's JupyterLab defaults (no "Jupyter news" prompt); .venv/bin
# comes first on PATH so that `course check N` works in its terminals.
lab: $(STAMP) ## open JupyterLab on the course, with the nbgrader extension
	PATH="$(CURDIR)/$(BIN):$$PATH" JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter-config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) $(LAB_ROOT) $(LAB_ARGS)

check: $(STAMP) ## your feedback: visible tests of week WEEK (make check WEEK=1, TASK=2: one task)
	$(if $(filter 6,$(WEEK)),-$(INSTALL_PROMETHEUS))
	$(BIN)/course check $(WEEK) $(if $(TASK),--task $(TASK))

release: $(STAMP) ## regenerate labs/ from solutions/ (instructors)
	$(BIN)/course release

release-check: $(STAMP) ## fail when labs/ is stale
	$(BIN)/course release --check

bench-grade: $(STAMP) ## grading benchmark: raw nbgrader vs course grade on 40 submissions
	$(BIN)/python benchmarks/grade_class.py $(BENCH_ARGS)

bench-serve: $(STAMP) ## serving benchmark: mlpipe.serve vs mlflow models serve (installs wrk)
	command -v wrk >/dev/null || $(SUDO) apt-get install -y wrk \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk; }
	$(BIN)/python benchmarks/serve.py $(BENCH_ARGS)

bench-validate: $(STAMP) ## validation benchmark: time and peak memory of `mlpipe validate` on a ~200 MB CSV
	$(BIN)/python benchmarks/validate.py $(BENCH_ARGS)

bench-check: $(STAMP) ## `course check` benchmark: time to the first row and total, per week, on the reference
	$(BIN)/python benchmarks/check.py $(BENCH_ARGS)

bench-monitor: $(STAMP) ## monitoring benchmark: `mlpipe monitor` on a 100,000-line log against a plain Evidently run
	$(BIN)/python benchmarks/monitor.py $(BENCH_ARGS)

alerts: ## promtool: check the scrape config and alert rules, run the rules' unit tests (installs prometheus)
	$(INSTALL_PROMETHEUS)
	cd $(MONITORING) && promtool check config prometheus.yml && promtool test rules alerts_test.yml

lock: ## re-pin requirements/lock.txt from requirements/requirements.in (LOCK_ARGS=--upgrade: newest)
	$(BIN)/uv pip compile requirements/requirements.in -o requirements/lock.txt \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(LOCK_ARGS)

clean: ## remove build output, reports and caches (keeps .venv)
	rm -rf build grades .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

# --- week 7: capacity (w7-capacity) ---------------------------------------------------------
# The API to load (start one replica first: python -m mlpipe serve), users and duration of the run.
LOAD_HOST ?= http://127.0.0.1:8000
LOAD_USERS ?= 4
LOAD_TIME ?= 30s
.PHONY: loadtest
loadtest: $(STAMP) ## week 7: Locust against LOAD_HOST (one running API replica), then mlpipe capacity's replica plan
	mkdir -p build
	$(BIN)/locust -f solutions/loadtest/locustfile.py --headless -u $(LOAD_USERS) -r $(LOAD_USERS) \
		-t $(LOAD_TIME) --host $(LOAD_HOST) --csv build/load --only-summary
	PYTHONPATH=solutions $(BIN)/python -m mlpipe capacity --params solutions/params.yaml \
		--stats build/load_stats.csv --history build/load_stats_history.csv
# --- end week 7: capacity --------------------------------------------------------------------
# --- week 7: rollout ---------------------------------------------------------------------------
.PHONY: bench-router
bench-router: $(STAMP) ## router benchmark: mlpipe.serve directly vs through the rollout's router (installs wrk)
	command -v wrk >/dev/null || $(SUDO) apt-get install -y wrk \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk; }
	$(BIN)/python benchmarks/router.py $(BENCH_ARGS)
# --- end of week 7: rollout --------------------------------------------------------------------
# --- week 7: scale (Ray) ---
.PHONY: bench-scale
bench-scale: $(STAMP) ## Ray benchmark: 1,000,000 rows on a head + worker (2 workers) vs one `mlpipe score`
	$(BIN)/python benchmarks/scale.py $(BENCH_ARGS)
# --- week 7: infra (w7-cloud) ---
INFRA_TEMPLATE ?= labs/infra/artifacts.yaml
.PHONY: infra-lint
infra-lint: $(STAMP) ## cfn-lint the CloudFormation template (INFRA_TEMPLATE=solutions/infra/artifacts.yaml: the reference)
	$(BIN)/cfn-lint $(INFRA_TEMPLATE)
# --- end of week 7: infra ---
# --- week 7: container images with podman (branch w7-images) ---------------------------------
# The week 1 and week 5 images, built offline on a local Debian base (no registry is reachable).
# Students with Docker Hub: make images BASE_IMAGE=python:3.11.7-slim.
BASE_IMAGE ?= localhost/mlpipe-base:bookworm
IMAGE_VERSION ?= 0.1.0
# Which code goes into the images: solutions (the reference) or labs (your own)
PIPELINE_DIR ?= solutions

.PHONY: podman-setup images

podman-setup: ## install podman (runc, debootstrap), write containers.conf, build the offline base image (~3 min once)
	$(SUDO) BASE_IMAGE=$(BASE_IMAGE) bash scripts/podman-setup.sh

images: podman-setup $(STAMP) ## build localhost/mlpipe-train:0.1.0 and mlpipe-serve:0.1.0 with podman (~6 min), print their sizes
	$(SUDO) BASE_IMAGE=$(BASE_IMAGE) IMAGE_VERSION=$(IMAGE_VERSION) PIPELINE_DIR=$(PIPELINE_DIR) \
		bash scripts/build-images.sh $(BIN)/python
# --- week 8: the churn data (capstone) ---
.PHONY: bench-churn
bench-churn: $(STAMP) ## churn benchmark: logistic baseline vs boosting, forest and the Bayes rate (ROC/PR AUC)
	$(BIN)/python benchmarks/churn.py $(BENCH_ARGS)
# --- end of week 8: the churn data ---

# --- grading beyond one machine: shards, course merge, Gradescope -------------------------
.PHONY: bench-shard gradescope-package
bench-shard: $(STAMP) ## sharding benchmark: 40 submissions as 2 shards + course merge vs one --jobs 2 run; 300 x 8 estimate
	$(BIN)/python benchmarks/shard.py $(BENCH_ARGS)

gradescope-package: $(STAMP) ## week WEEK's Gradescope autograder zip in build/gradescope (make gradescope-package WEEK=1)
	$(BIN)/course gradescope-package --week $(WEEK) --out build/gradescope
# --- end of grading beyond one machine ---------------------------------------------------------
