"""Search and export of the registry with the filter language: right rows, clear errors, audited."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from benefitflow.core import db
from benefitflow.registry import registry_export
from benefitflow.registry.individuals_import import WORKFLOW
from benefitflow.workflows import export_files
from benefitflow.workflows.direct import run_steps
from benefitflow.workflows.export import export_dir
from benefitflow.workflows.export_files import ExportError

HEADER = "first_name,last_name,dob,sex,group_code,recipient_info,individual_role,region,disability,number_of_children"


@pytest.fixture(scope="module")
def family(database) -> str:
    """A household of four in a region of its own, imported through the workflow."""
    region = f"Region-{uuid.uuid4().hex[:8]}"
    code = f"HX{uuid.uuid4().hex[:6].upper()}"
    rows = [f"Halima,Sow,1970-01-01,F,{code},1,HEAD,{region},none,3",
            f"Omar,Sow,1968-01-01,M,{code},2,SPOUSE,{region},severe,3",
            f"Awa,Sow,2012-01-01,F,{code},0,DAUGHTER,{region},,0",
            f"Ibou,Sow,2016-01-01,M,{code},0,SON,{region},mild,0"]
    path = database.inbox / f"{region}.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)
    return region


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def run_export(database, document, columns=None) -> registry_export.Export:
    with db.transaction() as cur:
        return registry_export.export(cur, document=document, columns=columns, target_dir=database.outbox / "exports",
                             user="maker", label="test")


def read(export: registry_export.Export) -> list[dict[str, str]]:
    with export.path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_writes_the_filtered_individuals_with_their_household(database, family) -> None:
    document = {"all": [{"field": "region", "op": "=", "value": family},
                        {"any": [{"field": "age", "op": "<", "value": 18},
                                 {"field": "disability", "op": "=", "value": "severe"}]}]}
    done = run_export(database, document, ["first_name", "age", "household_code", "role", "household_size", "disability"])
    rows = read(done)
    assert done.rows == 3 and len(rows) == 3
    assert sorted(r["first_name"] for r in rows) == ["Awa", "Ibou", "Omar"]
    assert {r["household_size"] for r in rows} == {"4"}
    assert list(rows[0]) == ["first_name", "age", "household_code", "role", "household_size", "disability"]


def test_cells_a_spreadsheet_would_run_are_exported_as_text_in_a_private_file(database) -> None:
    """A name may begin with '-' (only =, + and @ are refused at upload): the export neutralises it."""
    region = f"Region-{uuid.uuid4().hex[:8]}"
    path = database.inbox / f"{region}.csv"
    path.write_text(f"first_name,last_name,dob,region\n-Ann,Ba,1990-01-01,{region}\nBob,Ba,1991-01-01,{region}\n")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)
    done = run_export(database, {"all": [{"field": "region", "op": "=", "value": region}]},
                      ["first_name", "last_name", "age"])
    rows = read(done)
    assert sorted(r["first_name"] for r in rows) == ["'-Ann", "Bob"]
    assert all(r["age"].isdigit() for r in rows)  # numbers are written as numbers
    assert done.path.stat().st_mode & 0o777 == 0o640


def test_every_export_is_in_the_audit_trail(database, family) -> None:
    document = {"all": [{"field": "region", "op": "=", "value": family}]}
    done = run_export(database, document)
    with db.transaction() as cur:
        cur.execute("SELECT actor, outcome, details FROM ledger.audit_events WHERE action = 'registry.export'"
                    " AND object_id = %s", (done.path.name,))
        actor, outcome, details = cur.fetchone()
    assert (actor, outcome) == ("maker", "EXPORTED")
    assert details["filter"] == document and details["rows"] == 4 and details["sha256"] == done.sha256


@pytest.mark.parametrize(
    ("document", "columns", "message"),
    [
        ({"all": [{"field": "salary", "op": "=", "value": 1}]}, None, "unknown field 'salary'"),
        ({"all": [{"field": "age", "op": ">", "value": "eighteen"}]}, None, "expected a number"),
        ({"all": [{"field": "disability", "op": "=", "value": "extreme"}]}, None, "not one of"),
        ({"all": {"field": "age"}}, None, "expected a non-empty list"),
        ({}, ["first_name", "password"], "unknown column"),
        ({}, ["first_name", "first_name"], "asked for twice"),
    ],
)
def test_a_bad_request_is_a_clear_error_and_writes_nothing(database, family, document, columns, message) -> None:
    before = set((database.outbox / "exports").glob("*.csv")) if (database.outbox / "exports").exists() else set()
    with pytest.raises(ExportError, match=message):
        run_export(database, document, columns)
    assert set((database.outbox / "exports").glob("*.csv")) == before


@pytest.mark.parametrize("hostile", ["'; DROP TABLE registry.individuals; --", "Sow' OR '1'='1", "/* */ Sow",
                                     "Zoë 🙂", "%", "_"])
def test_hostile_values_select_nothing_and_break_nothing(database, family, hostile) -> None:
    # Within this module's family: other modules on the same database may name someone with a '_' or a '%'.
    done = run_export(database, {"all": [{"field": "region", "op": "=", "value": family}, {"any": [
        {"field": "last_name", "op": "=", "value": hostile},
        {"field": "last_name", "op": "contains", "value": hostile}]}]})
    assert done.rows == 0
    with db.transaction() as cur:
        assert registry_export.count(cur, {"all": [{"field": "region", "op": "=", "value": family}]}) == 4


def export_run(options: dict, *, checker: str | None, on_step=lambda _name, action: action()) -> tuple[dict, str]:
    run_id = uuid.uuid4().hex
    return run_steps(registry_export.WORKFLOW, options=options, maker="maker", checker=checker, run_id=run_id,
                                     on_step=on_step), run_id


def approved_file(done: dict, run_id: str) -> Path:
    return export_files.export_path(export_dir(), "registry", done["request_id"], run_id)


def test_an_export_of_names_waits_for_a_checker_and_writes_nothing_until_approved(database, family) -> None:
    options = {"filter": {"all": [{"field": "region", "op": "=", "value": family}]},
               "columns": ["individual_id", "first_name", "age"]}
    rejected, run_id = export_run(options, checker=None)
    assert (rejected["proposal"]["personal_columns"], rejected["proposal"]["rows_to_export"]) == ("first_name", 4)
    assert "commit" not in rejected and not approved_file(rejected, run_id).exists()
    assert query("SELECT count(*) FROM ledger.audit_events WHERE action = 'registry.export'"
                 " AND details->>'request_id' = %s", str(rejected["request_id"])) == [(0,)]


def test_an_export_without_personal_columns_is_written_at_once(database, family) -> None:
    options = {"filter": {"all": [{"field": "region", "op": "=", "value": family}]},
               "columns": ["individual_id", "age", "household_size", "disability"]}
    done, run_id = export_run(options, checker=None)  # no checker is asked
    assert done["export"]["rows"] == 4 and Path(done["export"]["file"]).is_file()
    assert query("SELECT r.status, count(d.decision_id) FROM intake.requests r LEFT JOIN ledger.decisions d"
                 " USING (request_id) WHERE r.run_id = %s GROUP BY r.status", run_id) == [("APPLIED", 0)]


def test_an_approved_export_writes_exactly_the_rows_the_checker_was_shown(database, family, inbox_file) -> None:
    """A person who joins the region between the request and the commit is not in the file."""
    options = {"filter": {"all": [{"field": "region", "op": "=", "value": family}]},
               "columns": ["individual_id", "first_name", "last_name"]}

    def someone_joins_before_the_commit(name: str, action):
        if name == "commit":
            path = inbox_file("late.csv", f"first_name,last_name,dob,region\nLate,Comer,1990-01-01,{family}\n")
            run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
                      run_id=uuid.uuid4().hex)
        return action()

    done, run_id = export_run(options, checker="checker", on_step=someone_joins_before_the_commit)
    with approved_file(done, run_id).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["first_name"] for r in rows) == ["Awa", "Halima", "Ibou", "Omar"] == sorted(
        r["first_name"] for r in rows if r["last_name"] == "Sow")
    assert done["commit"]["rows"] == 4
    assert approved_file(done, run_id).stat().st_mode & 0o777 == 0o640
    ((actor, details),) = query("SELECT actor, details FROM ledger.audit_events WHERE action = 'registry.export'"
                                " AND details->>'request_id' = %s", str(done["request_id"]))
    assert actor == "maker" and details["personal_columns"] == ["first_name", "last_name"] and details["rows"] == 4
    assert query("SELECT checker FROM ledger.decisions WHERE request_id = %s", done["request_id"]) == [("checker",)]
