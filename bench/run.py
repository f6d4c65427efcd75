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
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))


class PeakMemory:
    """Largest resident memory of any process of the run, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.peak_process = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> tuple[int, str]:
        found = (self.peak_bytes, self.peak_process)
        self.peak_bytes, self.peak_process = 0, ""
        return found

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["pid", "name", "memory_info"]):
                info = process.info
                if info["pid"] != me and not (info["name"] or "").startswith("postgres"):
                    continue
                rss = info["memory_info"].rss if info["memory_info"] else 0
                if rss > self.peak_bytes:
                    self.peak_bytes, self.peak_process = rss, "bench (python)" if info["pid"] == me else "postgres"


def main() -> None:
    from benefitflow.platform import postgres, stack
    from benefitflow.platform.instance import Instance

    home = Path(tempfile.mkdtemp(prefix="benefitflow-bench-", dir="/tmp"))
    home.chmod(0o755)
    instance = Instance.throwaway(home)
    os.environ.update(instance.benefitflow_env())
    try:
        stack.prepare_database(instance)
        stack.build_dbt(instance)
        instance.inbox.mkdir(parents=True, exist_ok=True)
        run(instance)
    finally:
        postgres.stop(instance)
        shutil.rmtree(home, ignore_errors=True)


def run(instance: Any) -> None:
    with PeakMemory() as memory:
        committed = bench_registry_import(instance, memory)
        top_up_registry(instance, ROWS - committed)
        bench_enrolment(memory)


class Stages:
    """Times each step of a run (`on_step` of run_steps) with the peak memory during it."""

    def __init__(self, memory: PeakMemory) -> None:
        self.memory = memory
        self.timings: list[tuple[str, float, int, str]] = []

    def __call__(self, step: str, action: Callable[[], Any]) -> Any:
        self.memory.reset()
        began = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - began
        time.sleep(0.3)  # one more memory sample
        self.timings.append((step, seconds, *self.memory.reset()))
        return result


def bench_registry_import(instance: Any, memory: PeakMemory) -> int:
    from benefitflow.registry.importing import WORKFLOW
    from benefitflow.synthetic import write_registry_file
    from benefitflow.workflow import run_steps

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
                       maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex, on_step=stages)
    floor, *steps = stages.timings
    print_table(steps, ROWS, "whole import (excl. approval)", floor=floor)
    proposal = result["proposal"]
    print(f"  outcome: {proposal['valid_rows']:,} valid, {proposal['invalid_rows']:,} invalid rows "
          f"({', '.join(f'{rule} {n:,}' for rule, n in sorted(proposal['invalid_by_rule'].items()))}); "
          f"{proposal['likely_duplicates']:,} likely duplicates shown to the checker; "
          f"{result['commit']['rows']:,} individuals committed")
    return int(result["commit"]["rows"])


def top_up_registry(instance: Any, rows: int) -> None:
    """Clean people (no planted errors) so the registry holds about ROWS individuals; not timed."""
    from benefitflow.registry.importing import WORKFLOW
    from benefitflow.synthetic import write_registry_file
    from benefitflow.workflow import run_steps

    if rows <= 0:
        return
    path = instance.inbox / "bench-registry-top-up.csv"
    write_registry_file(path, rows, seed=7, invalid_share=0.0, duplicate_share=0.0, likely_duplicate_share=0.0,
                        household_prefix="TU")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
              maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex)




def bench_enrolment(memory: PeakMemory) -> None:
    from benefitflow import db
    from benefitflow.programmes.define import DEFINE
    from benefitflow.programmes.enrolment import ENROLMENT
    from benefitflow.request_workflow import run_steps
    from benefitflow.synthetic import PLACES_BY_REGION

    regions = list(PLACES_BY_REGION)
    criteria = {"all": [{"field": "age", "op": ">=", "value": 0}, {"field": "region", "op": "in", "value": regions}]}
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM registry.individuals")
        registry_size = int(cur.fetchone()[0])
    plan = {"code": "BENCH", "name": "Bench plan", "type": "INDIVIDUAL", "valid_from": "2026-01-01",
            "currency": "KES", "entitlement": {"fixed_amount": "1000.00"}}
    run_steps(DEFINE, options={"plan": plan}, maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex)
    print(f"\nbenefitflow bench: enrolment into an INDIVIDUAL plan of a registry of {registry_size:,} individuals, "
          f"filter: age >= 0 and region in ({', '.join(regions)})")
    stages = Stages(memory)
    result = run_steps(ENROLMENT, options={"plan": "BENCH", "target_status": "ACTIVE", "criteria": criteria},
                       maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex, on_step=stages)
    print_table(stages.timings, result["commit"]["rows"], "whole enrolment (excl. approval)")
    proposal = result["proposal"]
    print(f"  outcome: {proposal['matching']:,} matching, {proposal['would_be_added']:,} enrolled ACTIVE")


def copy_floor(path: Path) -> None:
    from psycopg2 import sql

    from benefitflow import db
    from benefitflow.synthetic import HEADER

    with db.transaction() as cur:
        columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in HEADER)
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE intake.bench_floor ({})").format(columns))
        with path.open("rb") as handle:
            cur.copy_expert("COPY intake.bench_floor FROM STDIN WITH (FORMAT csv, HEADER true)", handle, size=1 << 20)
        cur.execute("DROP TABLE intake.bench_floor")


def print_table(steps: list[tuple[str, float, int, str]], rows: int, total_label: str,
                floor: tuple[str, float, int, str] | None = None) -> None:
    total = sum(seconds for _, seconds, _, _ in steps)
    peak = max(steps, key=lambda t: t[2])
    print(f"\n  {'stage':<34} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}  heaviest process")
    for step, seconds, peak_bytes, process in ([floor] if floor else []) + steps + [
            (total_label, total, peak[2], peak[3])]:
        print(f"  {step:<34} {seconds:8.1f} {rows / seconds:12,.0f} {peak_bytes / 2**20:8.0f}  {process}")
    if floor:
        print(f"  {total_label} / bare COPY floor: {total / floor[1]:.1f}x")


if __name__ == "__main__":
    main()
