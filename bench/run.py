"""`make bench`: each capability at scale, stage by stage, on a throwaway PostgreSQL.

    make bench                  # 1,000,000 individuals in households
    BENCH_ROWS=100000 make bench

1. Registry import of a synthetic file of BENCH_ROWS people.

The file has realistic names, dates and variables with a few per cent invalid, duplicate
and likely-duplicate rows. The import runs the code the `individuals_import` DAG runs
(intake, validation with duplicate checks, proposal, commit, publish) with
`skip_invalid_rows`; the approval is recorded by the bench as a checker (a human's wait is
not part of the figures). The floor is a bare COPY of the same file into an unlogged table.
Peak memory is sampled from every process of the run (this one and PostgreSQL's).

2. Enrolment: the registry is topped up to BENCH_ROWS people (a clean file, not timed), a plan
is defined, and everyone a two-condition filter selects is enrolled (`enrolment` workflow).

3. Payments: the plan's entitlement is 1,000.00 KES plus a 250.50 top-up for women. A payment
cycle bills every ACTIVE beneficiary (`payment_cycle`), a payroll takes the bills and writes the
provider's file (`payroll`), the provider's answers come back (`payroll_reconciliation` with
`skip_invalid_rows`), then a small file correcting the rows refused in the first. The provider is
simulated (not counted): the payroll file is streamed row by row into a filled copy, Paid "Yes"
with a receipt for 98% and "No" for every 50th row, with 5 stale rows (Status changed) and 5
mismatched amounts (+0.01) the reconciliation must refuse. The chain (cycle, payroll, both
reconciliations, without approvals) is compared with issue 17's 60 s target. The bench fails unless the
bills add up to the rule recomputed in plain SQL from the registry, the payroll file's control
total and rows match the bills, and after reconciliation every bill is PAID or FAILED, paid plus
failed adds up to the bills to the cent, the FAILED bills are the planted 2% and the payroll is
RECONCILED.

4. Grievances: one ticket per 20 people (50,000 at a million), reported by individuals and, for
the plan's beneficiaries, by their beneficiary id, across every category, channel and priority,
imported by the `grievances_import` workflow. Then the individual record
(`marts.mart_individual_record`, a view) is read for 20 people who have a plan, bills and a
grievance, by id and by name, as the Superset dashboard's native filters read it.

2a. Duplicate people (bench/duplicates.py): the registry-wide search, its recall on the duplicates the file planted
and its precision at the review threshold, and the search of what a 10,000-person upload changed.

5. The registry API (DCI sync search, bench/registry_api.py): search latency by national id and for a page of a
predicate, sustained requests per second for one client, the service's peak memory.

6. Ten rows of each kind: a registry update of 10 people, a status change of 10 beneficiaries,
a status change of 10 grievance tickets, and the 10-row corrections file of step 3. Above 10,000
people the same bench runs again at 10,000 people (in a process and database of its own, its
output kept in the bench folder) and each operation's time is given as a ratio to it (target
<= 1.5x, and <= 2 s at 10,000).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.duplicates import bench_duplicates
from bench.grievances import bench_grievances
from bench.payments import bench_payments
from bench.programmes import bench_enrolment
from bench.registry import bench_individual_record, bench_registry_import, top_up_registry
from bench.registry_api import bench_registry_api
from bench.report import PeakMemory
from bench.settings import REFERENCE_OUT, ROWS
from bench.small_operations import bench_small_operations, print_small_operations, reference_figures


def main() -> None:
    from benefitflow_dev import postgres, stack
    from benefitflow_dev.instance import Instance

    home = Path(tempfile.mkdtemp(prefix="benefitflow-bench-", dir="/tmp"))
    home.chmod(0o755)
    instance = Instance.throwaway(home)
    os.environ.update(instance.benefitflow_env())
    try:
        try:
            stack.prepare_database(instance)
            stack.build_dbt(instance)
            instance.inbox.mkdir(parents=True, exist_ok=True)
            load_as_a_task_starts()
            run(instance)
        finally:
            postgres.stop(instance)
        # The 10,000-people run goes after this run's PostgreSQL stopped: nothing else on the machine then.
        print_small_operations(reference_figures(instance))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def load_as_a_task_starts() -> None:
    """What Airflow's fork server loads once for all tasks (benefitflow_dev.instance.TASK_PRELOAD: GX, the parsed dbt
    project, the workflows) is loaded here before anything is timed: a task starts with it, so no step pays it."""
    from benefitflow_dev.instance import TASK_PRELOAD

    began = time.perf_counter()
    loaded = [module for module in TASK_PRELOAD if not module.startswith(("airflow.", "benefitflow_plugin"))]
    for module in loaded:  # (Airflow's own modules want its services)
        importlib.import_module(module)
    print(f"  loaded as Airflow's fork server loads it for every task (not timed): {', '.join(loaded)} "
          f"({time.perf_counter() - began:.1f} s)")


def run(instance: Any) -> None:
    with PeakMemory() as memory:
        imported = bench_registry_import(instance, memory)
        if not REFERENCE_OUT:  # the 10,000-people run is for the small operations' ratios
            bench_duplicates(instance, memory, imported)
        top_up_registry(instance, ROWS - imported.committed)
        bench_enrolment(memory)
        bench_payments(memory)
        bench_grievances(memory)
        bench_individual_record()
        if not REFERENCE_OUT:  # the 10,000-people run is for the small operations' ratios
            bench_registry_api(instance)
        bench_small_operations(memory)


if __name__ == "__main__":
    main()
