# benefitflow: `make up` brings the platform up with demo data, `make test` runs every test.
SHELL := /bin/bash
ROOT := $(abspath .)
AIRFLOW_VENV := $(ROOT)/.venv/airflow
SUPERSET_VENV := $(ROOT)/.venv/superset
LINT_VENV := $(ROOT)/.venv/lint
PY := PYTHONPATH=$(ROOT)/plugins:$(ROOT)/devtools $(AIRFLOW_VENV)/bin/python

.PHONY: up down status rebuild lint test test-unit test-integration test-e2e test-celery test-faults test-fast bench bench-airflow soak venvs chromium redis lock verify-audit clean

# The environments install side by side (make -j2): each mostly waits on downloads and unpacking.
venvs:
	@$(MAKE) --no-print-directory -s -j2 $(AIRFLOW_VENV)/.lock $(SUPERSET_VENV)/.lock

$(AIRFLOW_VENV)/.lock: requirements/airflow.lock scripts/make-venv.sh
	@echo "Installing the Airflow/dbt/GX environment into .venv/airflow"
	@scripts/make-venv.sh $(AIRFLOW_VENV) requirements/airflow.lock

$(LINT_VENV)/.lock: requirements/lint.lock scripts/make-venv.sh
	@echo "Installing the linters into .venv/lint"
	@scripts/make-venv.sh $(LINT_VENV) requirements/lint.lock

$(SUPERSET_VENV)/.lock: requirements/superset.lock scripts/make-venv.sh
	@echo "Installing the Superset environment into .venv/superset"
	@scripts/make-venv.sh $(SUPERSET_VENV) requirements/superset.lock

# `make up EXECUTOR=celery`: Airflow's CeleryExecutor, a Redis broker and two workers (WORKERS=n for another number),
# each in a folder of its own; `make up` alone keeps what the installation was brought up with (LocalExecutor at first).
# The same settings run the end-to-end tier on Celery: `make test-e2e EXECUTOR=celery`.
ifdef EXECUTOR
export BENEFITFLOW_EXECUTOR := $(EXECUTOR)
endif
ifdef WORKERS
export BENEFITFLOW_CELERY_WORKERS := $(WORKERS)
endif

up: venvs
	@if [ "$$($(PY) -c 'from benefitflow_dev.instance import PROJECT_ROOT as p, chosen_executor as e; print(e(p / ".local/executor"))')" \
	  = celery ]; then scripts/ensure-redis.sh; fi
	@$(PY) -m benefitflow_dev.cli up

# Every derived table again from the ledger (dbt build), e.g. after a table was dropped.
rebuild: venvs
	@$(PY) -m benefitflow_dev.cli rebuild

down:
	@if [ -x $(AIRFLOW_VENV)/bin/python ]; then $(PY) -m benefitflow_dev.cli down; fi

status: venvs
	@$(PY) -m benefitflow_dev.cli status

verify-audit: venvs
	@$(PY) -m benefitflow_dev.cli verify-audit

# ruff over the Python code, sqlfluff over the dbt models (config: pyproject.toml, .sqlfluff).
lint: $(LINT_VENV)/.lock
	@$(LINT_VENV)/bin/ruff check plugins devtools dags tests bench superset
	@$(LINT_VENV)/bin/sqlfluff lint dbt_project/models --processes 2 --nocolor

# Every test, in three tiers, each against services it starts and stops itself (throwaway PostgreSQL;
# for e2e also Airflow, Superset and a headless Chromium). Prints each tier's duration.
test: venvs chromium redis
	@scripts/test-tiers.sh unit integration e2e celery

# No services.
test-unit: venvs
	@scripts/test-tiers.sh unit

# PostgreSQL, dbt and GX; workflows run in-process.
test-integration: venvs
	@scripts/test-tiers.sh integration

# The running Airflow and Superset, and the browser.
test-e2e: venvs chromium $(if $(filter celery,$(EXECUTOR)),redis)
	@scripts/test-tiers.sh e2e

# The end-to-end tests marked `celery`, on the CeleryExecutor with Redis and two workers.
test-celery: venvs chromium redis
	@scripts/test-tiers.sh celery

# Processes killed and PostgreSQL crashed in the middle of workflows (tests/e2e/test_faults.py): not in `make test`.
test-faults: venvs $(if $(filter celery,$(EXECUTOR)),redis)
	@scripts/test-tiers.sh faults

# Debian's redis-server, the Celery workers' broker (installed with apt-get when run as root).
redis:
	@scripts/ensure-redis.sh

# Debian's chromium for the browser tests (installed with apt-get when run as root).
chromium:
	@scripts/ensure-chromium.sh

# Without the end-to-end tests (no Airflow or Superset services).
test-fast: venvs
	@scripts/test-tiers.sh unit integration

bench: venvs
	@$(PY) -m bench.run

# A small upload through the running Airflow (throwaway services): trigger -> approval -> success, step by step.
bench-airflow: venvs $(if $(filter celery,$(EXECUTOR)),redis)
	@$(PY) -m bench.airflow

# Makers and checkers at work at once (SOAK_MAKERS, default 20; SOAK_MINUTES, default 10), then the invariants.
soak: venvs $(if $(filter celery,$(EXECUTOR)),redis)
	@$(PY) -m bench.soak

# Regenerate the locks from requirements/*.in (needs the package index).
lock:
	@for env in airflow superset lint; do \
	  rm -rf /tmp/bf-lock-$$env && python3 -m venv /tmp/bf-lock-$$env && \
	  /tmp/bf-lock-$$env/bin/pip install -q -r requirements/$$env.in && \
	  /tmp/bf-lock-$$env/bin/pip freeze > requirements/$$env.lock; done

clean: down
	rm -rf .venv .local
