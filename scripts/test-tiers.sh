#!/usr/bin/env bash
# `make test`: the tiers one after the other, each a pytest session with its own throwaway services,
# stopped when the tier ends. Prints each tier's duration and its 25 slowest tests; fails if any tier failed.
set -uo pipefail
cd "$(dirname "$0")/.."
python="${BENEFITFLOW_TEST_PYTHON:-.venv/airflow/bin/python}"
failed=()
summary=()
for tier in "$@"; do
  started=$(date +%s)
  folder=$tier options=() executor=${BENEFITFLOW_EXECUTOR:-}
  # Integration tests run in-process against a database of their own: two workers (pytest-xdist), each
  # with its own throwaway PostgreSQL, a module per worker at a time. The e2e tier shares one Airflow.
  [[ $tier == integration ]] && options=(-n "${BENEFITFLOW_TEST_WORKERS:-2}" --dist loadfile)
  # The celery tier: the end-to-end tests marked `celery`, on services with the CeleryExecutor, Redis and two
  # workers in folders of their own (make up EXECUTOR=celery).
  [[ $tier == celery ]] && folder=e2e options=(-m celery) executor=celery
  # The faults tier (make test-faults, not in `make test`): processes killed and PostgreSQL crashed mid-workflow, on
  # services of its own; the e2e tier leaves those tests to it.
  [[ $tier == e2e ]] && options=(-m "not faults")
  [[ $tier == faults ]] && folder=e2e options=(-m faults)
  echo "=== tier ${tier}: tests/${folder} ${options[*]}"
  BENEFITFLOW_EXECUTOR=$executor PYTHONPATH="$PWD/plugins:$PWD/devtools" \
    "$python" -m pytest "tests/${folder}" --durations=25 "${options[@]}"
  status=$?
  (( status == 2 )) && { echo "tier ${tier} interrupted"; exit 2; }  # Ctrl-C (or a usage error): stop here
  (( status != 0 )) && failed+=("$tier")
  summary+=("tier ${tier}: $(( $(date +%s) - started )) s")
done
printf '%s\n' "=== durations" "${summary[@]}"
if (( ${#failed[@]} )); then
  echo "failed tiers: ${failed[*]}"
  exit 1
fi
