"""`make bench`: the workflow steps on a large self-test file, timed, on a throwaway PostgreSQL.

    make bench                 # 1,000,000 rows
    BENCH_ROWS=100000 make bench

Prints seconds and rows per second for each step. The approval is recorded directly (a
human's wait is not part of the figures); everything else is the code the DAG runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("code,label,amount\n")
        for start in range(0, rows, 100_000):
            handle.write("".join(f"B-{i},row {i},{i % 5000}.{i % 100:02d}\n"
                                 for i in range(start, min(start + 100_000, rows))))


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


def run(instance) -> None:
    from benefitflow import db, decisions
    from benefitflow.decisions import Decision
    from benefitflow.selftest import WORKFLOW
    from benefitflow.workflow import commit_step, intake_step, propose_step, validate_step

    path = instance.inbox / "bench.csv"
    write_file(path, ROWS)
    print(f"\nbenefitflow bench: {ROWS:,} rows, {path.stat().st_size / 1e6:.0f} MB file")
    timings: list[tuple[str, float]] = []

    def timed(step: str, action):
        started = time.perf_counter()
        result = action()
        timings.append((step, time.perf_counter() - started))
        return result

    upload = timed("intake (sha256 + COPY)", lambda: intake_step(
        spec=WORKFLOW.spec, file=path.name, user="bench", dag_id="bench", run_id="bench"))
    validated = timed("validate (GX, 8 expectations)", lambda: validate_step(
        upload=upload, suite="selftest", on_invalid_rows="reject_file", user="bench"))
    timed("propose (dbt)", lambda: propose_step(workflow=WORKFLOW, upload=upload, validated=validated))
    with db.transaction() as cur:
        decisions.record(cur, Decision(operation="selftest", dag_id="bench", run_id="bench", maker="bench",
                                       checker="bench-checker", checker_group="RegistryCheckers", policy="any",
                                       outcome="APPROVED", upload_id=upload["upload_id"]))
    timed("commit (ledger append)", lambda: commit_step(
        workflow=WORKFLOW, dag_id="bench", run_id="bench", upload_id=upload["upload_id"], user="bench"))
    from benefitflow import dbt_runner
    timed("publish (dbt tag:publish)", lambda: dbt_runner.run(["run", "--select", "tag:publish"]))
    total = sum(seconds for _, seconds in timings)
    for step, seconds in timings + [("total", total)]:
        print(f"  {step:<32} {seconds:8.1f} s  {ROWS / seconds:12,.0f} rows/s")


if __name__ == "__main__":
    main()
