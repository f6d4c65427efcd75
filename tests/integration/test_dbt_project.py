"""dbt: the whole project, unit tests included, builds on an empty database; state is derived."""

import subprocess
import sys
from pathlib import Path

from benefitflow import db, dbt_runner
from benefitflow.exports import PERSONAL_COLUMNS

DBT = str(Path(sys.executable).with_name("dbt"))


def test_dbt_build_passes_with_unit_tests(database, tmp_path) -> None:
    result = subprocess.run([DBT, "build", "--profiles-dir", ".", "--target-path", str(tmp_path)], cwd="dbt_project",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "ERROR=0" in result.stdout
    assert "unit_test" in result.stdout


def test_derived_tables_are_rebuilt_from_the_ledger(database) -> None:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM marts.mart_approvals")
        before = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM ledger.decisions")
        decisions = cur.fetchone()[0]
    with db.transaction() as cur:
        cur.execute("DROP TABLE marts.mart_approvals")
    dbt_runner.run(["run", "--select", "mart_approvals"])
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM marts.mart_approvals")
        assert cur.fetchone()[0] == decisions
    assert before <= decisions


# Free text written by makers and checkers may name anyone: it stays in marts with a region (or out of the marts).
FREE_TEXT_COLUMNS = frozenset({"reason", "comment", "message", "notes"})


def test_marts_every_manager_reads_hold_no_personal_data_nor_free_text(database) -> None:
    with db.transaction() as cur:
        cur.execute("SELECT table_name, array_agg(column_name::text) FROM information_schema.columns"
                    " WHERE table_schema = 'marts' GROUP BY table_name")
        marts = dict(cur.fetchall())
    without_region = {name: set(columns) for name, columns in marts.items() if "region" not in columns}
    assert {"mart_approvals", "mart_uploads", "mart_payrolls"} <= without_region.keys()
    found = {name: sorted(columns & (PERSONAL_COLUMNS | FREE_TEXT_COLUMNS)) for name, columns in without_region.items()}
    assert {name: columns for name, columns in found.items() if columns} == {}
