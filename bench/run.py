"""`make bench`: the registry import of a large synthetic file, stage by stage, on a throwaway PostgreSQL.

    make bench                  # 1,000,000 individuals in households
    BENCH_ROWS=100000 make bench

The file has realistic names, dates and variables with a few per cent invalid, duplicate
and likely-duplicate rows. The import runs the code the `individuals_import` DAG runs
(intake, validation with duplicate checks, proposal, commit, publish) with
`skip_invalid_rows`; the approval is recorded by the bench as a checker (a human's wait is
not part of the figures). The floor is a bare COPY of the same file into an unlogged table.
Peak memory is sampled from every process of the run (this one and PostgreSQL's).
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

    timings: list[tuple[str, float, int, str]] = []
    with PeakMemory() as memory:
        def timed(step: str, action: Callable[[], Any]) -> Any:
            memory.reset()
            began = time.perf_counter()
            result = action()
            seconds = time.perf_counter() - began
            time.sleep(0.3)  # one more memory sample
            timings.append((step, seconds, *memory.reset()))
            return result

        timed("floor: bare COPY, unlogged table", lambda: copy_floor(path))
        result = run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
                           maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex, on_step=timed)
    print_table(timings)
    proposal = result["proposal"]
    print(f"  outcome: {proposal['valid_rows']:,} valid, {proposal['invalid_rows']:,} invalid rows "
          f"({', '.join(f'{rule} {n:,}' for rule, n in sorted(proposal['invalid_by_rule'].items()))}); "
          f"{proposal['likely_duplicates']:,} likely duplicates shown to the checker; "
          f"{result['commit']['rows']:,} individuals committed")


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


def print_table(timings: list[tuple[str, float, int, str]]) -> None:
    floor_seconds = timings[0][1]
    stages = timings[1:]
    total = sum(seconds for _, seconds, _, _ in stages)
    peak = max(stages, key=lambda t: t[2])
    print(f"\n  {'stage':<34} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}  heaviest process")
    for step, seconds, peak_bytes, process in timings + [("whole import (excl. approval)", total, peak[2], peak[3])]:
        print(f"  {step:<34} {seconds:8.1f} {ROWS / seconds:12,.0f} {peak_bytes / 2**20:8.0f}  {process}")
    print(f"  whole import / bare COPY floor: {total / floor_seconds:.1f}x")


if __name__ == "__main__":
    main()
