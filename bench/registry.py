"""The registry: a synthetic file of BENCH_ROWS people imported (against a bare COPY), the registry topped up,
and the individual record read by id and by name."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.duplicates import Imported
from bench.report import PeakMemory, Stages, print_table
from bench.settings import CHECKER, MAKER, RECORD_SAMPLE, ROWS

if TYPE_CHECKING:  # benefitflow is imported once the bench's database is set up
    from benefitflow.workflows.declaration import Workflow


def bench_registry_import(instance: Any, memory: PeakMemory) -> Imported:
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.workflows.direct import run_steps
    from benefitflow_dev.synthetic import write_registry_file

    path = instance.inbox / "bench-registry.csv"
    started = time.perf_counter()
    generated = write_registry_file(path, ROWS)
    print(f"\nbenefitflow bench: registry import of {ROWS:,} individuals in {generated.households:,} households "
          f"({path.stat().st_size / 1e6:.0f} MB; generated in {time.perf_counter() - started:.1f} s)")
    print(f"  planted: {generated.invalid_rows:,} invalid, {generated.duplicate_rows:,} duplicate national ids, "
          f"{generated.likely_duplicate_rows:,} likely duplicates")

    stages = Stages(memory)
    stages("floor: bare COPY, unlogged table", lambda: copy_floor(path))
    result = run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
                       maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex, on_step=stages)
    floor, *steps = stages.timings
    print_table(steps, ROWS, "whole import (excl. approval)", floor=floor)
    proposal = result["proposal"]
    print(f"  outcome: {proposal['valid_rows']:,} valid, {proposal['invalid_rows']:,} invalid rows "
          f"({', '.join(f'{rule} {n:,}' for rule, n in sorted(proposal['invalid_by_rule'].items()))}); "
          f"{proposal['likely_duplicates']:,} likely duplicates shown to the checker; "
          f"{result['commit']['rows']:,} individuals committed")
    print_digest_cost(WORKFLOW, result, stages)
    return Imported(generated, int(result["upload_id"]), int(result["commit"]["rows"]))


def print_digest_cost(workflow: Workflow, taken: dict[str, Any], stages: Stages) -> None:
    """What the proposal digest costs (computed again here, as the approve and commit steps do) against propose."""
    from benefitflow.core import db
    from benefitflow.workflows import proposal_digest

    proposal = workflow.proposal_for(taken)
    with db.transaction() as cur:
        began = time.perf_counter()
        proposal_digest.compute(cur, proposal)
        seconds = time.perf_counter() - began
        cur.execute(f"SELECT count(*) FROM {proposal.table} WHERE {proposal.key_column} = %s", (proposal.key,))
        rows = cur.fetchone()[0]
    propose = next(step_seconds for step, step_seconds, _, _ in stages.timings if step == "propose")
    print(f"  proposal digest of {rows:,} rows: {seconds:.2f} s = {100 * seconds / propose:.1f} % of the propose step "
          f"({propose:.1f} s, digest included; target under 10 %)")


def top_up_registry(instance: Any, rows: int) -> None:
    """Clean people (no planted errors) so the registry holds about ROWS individuals; not timed."""
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.workflows.direct import run_steps
    from benefitflow_dev.synthetic import write_registry_file

    if rows <= 0:
        return
    path = instance.inbox / "bench-registry-top-up.csv"
    write_registry_file(path, rows, seed=7, invalid_share=0.0, duplicate_share=0.0, likely_duplicate_share=0.0,
                        household_prefix="TU")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
              maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex)


def copy_floor(path: Path) -> None:
    from psycopg2 import sql

    from benefitflow.core import db
    from benefitflow_dev.synthetic import HEADER

    with db.transaction() as cur:
        columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in HEADER)
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE intake.bench_floor ({})").format(columns))
        with path.open("rb") as handle:
            cur.copy_expert("COPY intake.bench_floor FROM STDIN WITH (FORMAT csv, HEADER true)", handle, size=1 << 20)
        cur.execute("DROP TABLE intake.bench_floor")


def bench_individual_record() -> None:
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute(
            "SELECT g.individual_id, i.first_name || ' ' || i.last_name FROM ledger.grievances g"
            " JOIN registry.individuals i USING (individual_id)"
            " JOIN programmes.beneficiaries b ON b.individual_id = g.individual_id"
            " WHERE g.beneficiary_id IS NOT NULL ORDER BY g.grievance_code LIMIT %s", (RECORD_SAMPLE,))
        people = cur.fetchall()
        print(f"\nbenefitflow bench: the individual record of {len(people)} people with a plan, bills and a "
              "grievance (marts.mart_individual_record)")
        for label, column, index in (("by individual id", "individual_id", 0), ("by name", "full_name", 1)):
            timings, rows = [], 0
            for person in people:
                began = time.perf_counter()
                cur.execute(f"SELECT * FROM marts.mart_individual_record WHERE {column} = %s", (person[index],))
                rows += len(cur.fetchall())
                timings.append((time.perf_counter() - began) * 1000)
            timings.sort()
            print(f"  {label:<18} median {timings[len(timings) // 2]:7.1f} ms   slowest {timings[-1]:7.1f} ms"
                  f"   {rows / len(people):.1f} lines per record")
