# benefitflow: `make up` brings the platform up with demo data, `make test` runs every test.
SHELL := /bin/bash
ROOT := $(abspath .)
AIRFLOW_VENV := $(ROOT)/.venv/airflow
SUPERSET_VENV := $(ROOT)/.venv/superset
PY := PYTHONPATH=$(ROOT)/plugins $(AIRFLOW_VENV)/bin/python

.PHONY: up down status test test-fast bench venvs chromium lock verify-audit clean

venvs: $(AIRFLOW_VENV)/.lock $(SUPERSET_VENV)/.lock

$(AIRFLOW_VENV)/.lock: requirements/airflow.lock scripts/make-venv.sh
	@echo "Installing the Airflow/dbt/GX environment into .venv/airflow"
	@scripts/make-venv.sh $(AIRFLOW_VENV) requirements/airflow.lock

$(SUPERSET_VENV)/.lock: requirements/superset.lock scripts/make-venv.sh
	@echo "Installing the Superset environment into .venv/superset"
	@scripts/make-venv.sh $(SUPERSET_VENV) requirements/superset.lock

up: venvs
	@$(PY) -m benefitflow.platform.cli up

down:
	@if [ -x $(AIRFLOW_VENV)/bin/python ]; then $(PY) -m benefitflow.platform.cli down; fi

status: venvs
	@$(PY) -m benefitflow.platform.cli status

verify-audit: venvs
	@$(PY) -m benefitflow.platform.cli verify-audit

# Every test, against services the suite starts itself (throwaway PostgreSQL, Airflow, Superset),
# and a headless Chromium for the browser tests.
test: venvs chromium
	@$(PY) -m pytest

# Debian's chromium for the browser tests (installed with apt-get when run as root).
chromium:
	@scripts/ensure-chromium.sh

# Without the end-to-end tests (no Airflow or Superset services).
test-fast: venvs
	@$(PY) -m pytest -m "not e2e"

bench: venvs
	@$(PY) -m bench.run

# Regenerate the locks from requirements/*.in (needs the package index).
lock:
	@for env in airflow superset; do \
	  rm -rf /tmp/bf-lock-$$env && python3 -m venv /tmp/bf-lock-$$env && \
	  /tmp/bf-lock-$$env/bin/pip install -q -r requirements/$$env.in && \
	  /tmp/bf-lock-$$env/bin/pip freeze > requirements/$$env.lock; done

clean: down
	rm -rf .venv .local
