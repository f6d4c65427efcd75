"""Ten rows of each kind at BENCH_ROWS people, and the same at 10,000 people (a run of its own) for the ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import PeakMemory, Stages, stage_seconds
from bench.settings import (
    CHECKER,
    MAKER,
    PLAN,
    REFERENCE_OUT,
    REFERENCE_ROWS,
    ROWS,
    SMALL_RATIO_TARGET,
    SMALL_ROWS,
    SMALL_SECONDS_TARGET,
    inbox_file,
)

SMALL_OPERATIONS: dict[str, tuple[float, float]] = {}  # operation -> (seconds excl. approval, of which publish)


def bench_small_operations(memory: PeakMemory) -> None:
    """Ten rows of each kind, through the same steps as the DAGs (approval excluded)."""
    from benefitflow.grievances.grievance_status import WORKFLOW as GRIEVANCE_STATUS
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
    from benefitflow.workflows.direct import run_steps

    print(f"\nbenefitflow bench: {SMALL_ROWS} rows of each kind in a registry of {ROWS:,} people")
    people = first_values("SELECT individual_id FROM registry.individuals ORDER BY individual_id LIMIT %s")
    update = inbox_file("bench-small-update.csv", ["id,last_name", *(f"{person},Corrected" for person in people)])
    timed_small_operation("registry update", memory, lambda on_step: run_steps(
        INDIVIDUALS, file=update, options={"mode": "update", "on_invalid_rows": "reject_file"}, maker=MAKER,
        checker=CHECKER, run_id=uuid.uuid4().hex, on_step=on_step))
    beneficiaries = first_values("SELECT beneficiary_id FROM programmes.beneficiaries WHERE status = 'ACTIVE'"
                                 " AND plan_code = %s ORDER BY beneficiary_id LIMIT %s", PLAN)
    chosen = inbox_file("bench-small-status.csv", ["beneficiary_id", *beneficiaries])
    timed_small_operation("beneficiary status change", memory, lambda on_step: run_steps(
        STATUS, options={"plan": PLAN, "status": "SUSPENDED", "reason": "bench", "file": chosen}, maker=MAKER,
        checker=CHECKER, run_id=uuid.uuid4().hex, on_step=on_step))
    tickets = first_values("SELECT grievance_code FROM grievances.grievances WHERE status = 'RECEIVED'"
                           " ORDER BY grievance_code LIMIT %s")
    timed_small_operation("grievance status change", memory, lambda on_step: run_steps(
        GRIEVANCE_STATUS, options={"grievances": tickets, "status": "OPEN", "comment": "bench"}, maker=MAKER,
        checker=CHECKER, run_id=uuid.uuid4().hex, on_step=on_step))
    if REFERENCE_OUT:
        Path(REFERENCE_OUT).write_text(json.dumps(SMALL_OPERATIONS))


def first_values(query: str, *parameters: Any) -> list[str]:
    """The first SMALL_ROWS values the query gives (its last parameter is the LIMIT); exactly that many."""
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute(query, (*parameters, SMALL_ROWS))
        values = [str(value) for (value,) in cur.fetchall()]
    if len(values) != SMALL_ROWS:
        raise RuntimeError(f"the bench needs {SMALL_ROWS} rows for a small operation, found {len(values)}: {query}")
    return values


def timed_small_operation(label: str, memory: PeakMemory, run: Callable[[Stages], Any]) -> None:
    stages = Stages(memory)
    run(stages)
    record_small_operation(f"{label} ({SMALL_ROWS} rows)", stages)


def record_small_operation(label: str, stages: Stages) -> None:
    SMALL_OPERATIONS[label] = (stage_seconds(stages), sum(s for step, s, _, _ in stages.timings if step == "publish"))


def reference_figures(instance: Any) -> dict[str, tuple[float, float]] | None:
    """The same bench at 10,000 people, in a process and database of its own (above 10,000 people only)."""
    if ROWS <= REFERENCE_ROWS or REFERENCE_OUT:
        return None
    out, log = instance.home / "reference.json", instance.home / "reference.log"
    print(f"\nbenefitflow bench: the same at {REFERENCE_ROWS:,} people, for the ratios", flush=True)
    with log.open("w") as sink:
        done = subprocess.run([sys.executable, "-m", "bench.run"], stdout=sink, stderr=subprocess.STDOUT, check=False,
                              env={**os.environ, "BENCH_ROWS": str(REFERENCE_ROWS), "BENCH_REFERENCE_OUT": str(out)})
    if done.returncode != 0 or not out.exists():
        print(f"  the {REFERENCE_ROWS:,}-people run failed (exit {done.returncode}); its last lines:\n"
              + "".join(log.read_text().splitlines(keepends=True)[-20:]))
        return None
    return {label: tuple(figures) for label, figures in json.loads(out.read_text()).items()}


def print_small_operations(reference: dict[str, tuple[float, float]] | None) -> None:
    if not SMALL_OPERATIONS:
        return
    print(f"\nbenefitflow bench: {SMALL_ROWS}-row operations at {ROWS:,} people (seconds excl. approval; publish)")
    header = f"  {'operation':<40} {'seconds':>8} {'publish':>8}"
    print(header + (f" {f'at {REFERENCE_ROWS:,}':>10} {'ratio':>7}" if reference else ""))
    for label, (seconds, publish) in SMALL_OPERATIONS.items():
        line = f"  {label:<40} {seconds:8.2f} {publish:8.2f}"
        if reference and label in reference:
            small = reference[label][0]
            verdict = "met" if seconds / small <= SMALL_RATIO_TARGET and small <= SMALL_SECONDS_TARGET else "MISSED"
            line += f" {small:10.2f} {seconds / small:6.2f}x  {verdict}"
        print(line)
    if reference:
        print(f"  target: <= {SMALL_RATIO_TARGET}x the same at {REFERENCE_ROWS:,} people, and <= "
              f"{SMALL_SECONDS_TARGET:.0f} s there")
