"""Grievances on a real PostgreSQL with real GX and dbt: import, checks, due dates, status changes, the record."""

from __future__ import annotations

import csv
import uuid
from datetime import date, timedelta

import psycopg2
import pytest

from benefitflow.core import config, db
from benefitflow.core.errors import WorkflowError
from benefitflow.grievances.grievance_status import WORKFLOW as STATUS
from benefitflow.grievances.grievances_import import WORKFLOW as GRIEVANCES
from benefitflow.grievances.grievances_import import categories
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.registry.individual_record_export import WORKFLOW as RECORD_EXPORT
from benefitflow.workflows import export_files
from benefitflow.workflows.direct import run_steps as run_export
from benefitflow.workflows.direct import run_steps as run_upload
from benefitflow.workflows.export import export_dir
from tests.integration.programme_data import in_region, plan_document, query, register_region, run, tag

HEADER = "individual_id,beneficiary_id,title,description,category,channel,priority,incident_date,received_on"


@pytest.fixture(scope="module")
def people(database) -> dict[str, str]:
    """A region of four households; a GROUP plan enrolling them; ids of a head, a daughter and a beneficiary."""
    region = register_region()
    code = f"GG-{tag()}"
    run(DEFINE, plan=plan_document(code, type="GROUP", entitlement={"fixed_amount": "900.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [in_region(region)]})
    (head, household), = query("SELECT individual_id::text, household_code FROM registry.individuals"
                               " WHERE region = %s AND role = 'HEAD' ORDER BY household_code LIMIT 1", region)
    (daughter,), = query("SELECT individual_id::text FROM registry.individuals WHERE household_code = %s"
                         " AND role = 'DAUGHTER'", household)
    (beneficiary,), = query("SELECT beneficiary_id::text FROM programmes.beneficiaries WHERE household_code = %s",
                            household)
    return {"region": region, "plan": code, "head": head, "daughter": daughter, "beneficiary": beneficiary,
            "household": household}


def upload(rows: list[str], **options: str) -> dict:
    path = config.inbox() / f"grievances-{uuid.uuid4().hex[:8]}.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return run_upload(GRIEVANCES, file=path.name, options=options, maker="maker", checker="checker",
                      run_id=uuid.uuid4().hex)


def ticket(code: str) -> dict:
    (row,) = query("SELECT row_to_json(g)::jsonb FROM grievances.grievances g WHERE grievance_code = %s", code)
    return row[0]


def codes_of(upload_id: int) -> list[str]:
    return [code for (code,) in query("SELECT grievance_code FROM ledger.grievances WHERE upload_id = %s"
                                      " ORDER BY row_number", upload_id)]


def test_tickets_are_linked_to_people_and_due_by_category(people) -> None:
    received = date.today() - timedelta(days=3)
    result = upload([
        f"{people['daughter']},,Not paid in March,\"Went to the point, \"\"no money\"\"\",payment,sms,HIGH,"
        f"{received - timedelta(days=5)},{received}",
        f",{people['beneficiary']},Wrongly suspended,,ENROLMENT,PHONE,,,",
    ])
    assert result["proposal"]["grievances_to_record"] == 2
    first, second = (ticket(code) for code in codes_of(result["upload_id"]))
    assert (first["individual_id"], first["category"], first["channel"], first["priority"]) == (
        people["daughter"], "PAYMENT", "SMS", "HIGH")
    assert first["description"] == 'Went to the point, "no money"'
    assert first["due_on"] == str(received + timedelta(days=categories()["PAYMENT"]["resolution_days"]))
    # A GROUP plan's beneficiary: the household's head, and the plan it is about.
    assert (second["individual_id"], second["plan_code"], second["priority"], second["received_on"]) == (
        people["head"], people["plan"], "NORMAL", str(date.today()))
    assert second["due_on"] == str(date.today() + timedelta(days=categories()["ENROLMENT"]["resolution_days"]))
    assert {first["status"], second["status"]} == {"RECEIVED"}


# Ids no one has (fixed, so that every pytest-xdist worker collects the same test ids).
UNKNOWN_PERSON = "0f6b8a52-3c1e-4d7a-9b2e-5a4c3d2e1f00"
UNKNOWN_BENEFICIARY = "7c2d9e14-8b3a-4f6c-a1d5-e9f8b7c6a500"


@pytest.mark.parametrize(("row", "column", "rule"), [
    (",,Nobody,,PAYMENT,SMS,,,", "individual_id", "reporter:missing"),
    (f"{UNKNOWN_PERSON},,Unknown person,,PAYMENT,SMS,,,", "individual_id", "individual_id:unknown"),
    (f",{UNKNOWN_BENEFICIARY},Unknown beneficiary,,PAYMENT,SMS,,,", "beneficiary_id", "beneficiary_id:unknown"),
    ("{head},,Bad category,,WEATHER,SMS,,,", "category", "category_code"),
    ("{head},,Bad channel,,PAYMENT,PIGEON,,,", "channel", "channel_code"),
    ("{head},,Future,,PAYMENT,SMS,,2999-01-01,", "incident_date", "incident_date"),
    ("{head},,Not a date,,PAYMENT,SMS,,2026-02-30,", "incident_date", "incident_date"),
    ("{head},,Before,,PAYMENT,SMS,,2026-03-02,2026-03-01", "incident_date", "incident_date:after_received_on"),
    ("{head},,,,PAYMENT,SMS,,,", "title", "title"),
    ("{daughter},{other_beneficiary},Mismatch,,PAYMENT,SMS,,,", "beneficiary_id", "reporter:disagree"),
])
def test_a_bad_row_is_reported_by_row_and_column_and_nothing_is_recorded(people, row, column, rule) -> None:
    (other,), = query("SELECT beneficiary_id::text FROM programmes.beneficiaries WHERE plan_code = %s"
                      " AND household_code <> %s LIMIT 1", people["plan"], people["household"])
    before = query("SELECT count(*) FROM ledger.grievances")
    good = f"{people['head']},,Fine,,OTHER,WEB,,,"
    with pytest.raises(WorkflowError, match="invalid"):
        upload([good, row.format(head=people["head"], daughter=people["daughter"], other_beneficiary=other)])
    (upload_id,), = query("SELECT max(upload_id) FROM intake.uploads WHERE kind = 'grievances'")
    errors = query("SELECT row_number, column_name, rule FROM intake.row_errors WHERE upload_id = %s", upload_id)
    assert [(r, c) for r, c, _ in errors] == [(2, column)], errors
    assert errors[0][2].startswith(rule)
    assert query("SELECT count(*) FROM ledger.grievances") == before
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", upload_id) == [("INVALID",)]


def test_skip_invalid_rows_records_the_valid_ones(people) -> None:
    result = upload([f"{people['head']},,Kept,,OTHER,WEB,,,", ",,Dropped,,OTHER,WEB,,,"],
                    on_invalid_rows="skip_invalid_rows")
    assert [ticket(code)["title"] for code in codes_of(result["upload_id"])] == ["Kept"]


def change(codes: list[str], status: str, comment: str = "done", checker: str | None = "checker") -> dict:
    return run(STATUS, checker=checker, grievances=codes, status=status, comment=comment)


def test_status_follows_the_transition_table_and_keeps_the_resolution(people) -> None:
    first, second = codes_of(upload([f"{people['head']},,Late,,PAYMENT,PHONE,,,",
                                     f"{people['head']},,Rude staff,,SERVICE,IN_PERSON,,,"])["upload_id"])
    result = change([first, second.lower()], "OPEN", "accepted")
    assert result["proposal"]["changes"] == {"RECEIVED → OPEN": 2}
    change([first], "IN_PROGRESS", "calling the provider")
    refused = change([first, second], "RESOLVED", "paid on 2026-03-20, receipt R1")
    assert refused["proposal"]["changes"] == {"IN_PROGRESS → RESOLVED": 1}
    assert refused["proposal"]["not_allowed"] == [f"{second}: OPEN cannot become RESOLVED"]
    assert (ticket(first)["status"], ticket(first)["resolution"]) == ("RESOLVED", "paid on 2026-03-20, receipt R1")
    assert ticket(second)["status"] == "OPEN"
    change([first], "CLOSED", "confirmed by phone")
    change([first], "OPEN", "the person came back: still not paid")
    reopened = ticket(first)
    assert (reopened["status"], reopened["resolution"], reopened["times_reopened"], reopened["version"]) == (
        "OPEN", None, 1, 6)
    history = query("SELECT e.status, e.comment, d.maker, d.checker FROM ledger.grievance_events e"
                    " JOIN ledger.commits c USING (commit_id) JOIN ledger.decisions d USING (decision_id)"
                    " JOIN ledger.grievances g USING (grievance_id) WHERE g.grievance_code = %s ORDER BY e.version",
                    first)
    assert [status for status, *_ in history] == ["RECEIVED", "OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED", "OPEN"]
    assert {(maker, checker) for *_, maker, checker in history} == {("maker", "checker")}


def test_a_rejected_change_and_unknown_codes_change_nothing(people) -> None:
    (code,) = codes_of(upload([f"{people['head']},,Waiting,,OTHER,SMS,,,"])["upload_id"])
    change([code], "OPEN", checker=None)
    assert ticket(code)["status"] == "RECEIVED"
    with pytest.raises(WorkflowError, match="no grievance with code GR99999999"):
        change([code, "GR99999999"], "OPEN")
    with pytest.raises(WorkflowError, match="not a grievance code"):
        change(["'; DROP TABLE ledger.grievances; --"], "OPEN")
    with pytest.raises(WorkflowError, match="resolution"):
        change([code], "OPEN", comment=" ")
    assert ticket(code)["status"] == "RECEIVED"


def test_the_ledger_refuses_a_transition_outside_the_table(people) -> None:
    (code,) = codes_of(upload([f"{people['head']},,Skip ahead,,OTHER,SMS,,,"])["upload_id"])
    with pytest.raises(psycopg2.Error, match="not in ledger.grievance_status_transitions"), \
            db.transaction() as cur:
        cur.execute("SELECT max(commit_id) FROM ledger.commits")
        cur.execute("INSERT INTO ledger.grievance_events (grievance_id, version, status, comment, commit_id)"
                    " SELECT grievance_id, 2, 'CLOSED', 'x', %s FROM ledger.grievances WHERE grievance_code = %s",
                    (cur.fetchone()[0], code))


def test_the_individual_record_shows_identity_plans_grievances_and_uploads(people) -> None:
    (code,) = codes_of(upload([f",{people['beneficiary']},For the record,,PAYMENT,SMS,,,"])["upload_id"])
    sections = dict(query("SELECT section, count(*) FROM marts.mart_individual_record WHERE individual_id = %s"
                          " GROUP BY 1", people["head"]))
    assert sections["identity"] == 1 and sections["upload"] >= 1
    assert sections["plan status"] >= 1  # the household's plan, through the household
    assert query("SELECT status FROM marts.mart_individual_record WHERE individual_id = %s AND reference = %s",
                 people["head"], code) == [("RECEIVED",)]
    # The daughter's record shows her household's plan but not the head's grievances.
    daughter = dict(query("SELECT section, count(*) FROM marts.mart_individual_record WHERE individual_id = %s"
                          " GROUP BY 1", people["daughter"]))
    assert daughter["plan status"] == sections["plan status"]
    assert query("SELECT count(*) FROM marts.mart_individual_record WHERE individual_id = %s AND reference = %s",
                 people["daughter"], code) == [(0,)]
    assert query("SELECT count(*) FROM marts.mart_grievances WHERE grievance_code = %s AND region = %s",
                 code, people["region"]) == [(1,)]


def test_one_persons_record_exports_as_csv_once_approved_and_is_audited(people) -> None:
    """The record names the person: the export waits for a registry checker and is written at commit."""
    (code,) = codes_of(upload([f"{people['head']},,Exported,,OTHER,SMS,,,"])["upload_id"])
    run_id = uuid.uuid4().hex
    done = run_export(RECORD_EXPORT, options={"individual_id": people["head"]}, maker="maker", checker="checker",
                      run_id=run_id)
    assert done["proposal"]["personal_columns"] == "full_name"
    path = export_files.export_path(export_dir(), "individual_record", done["request_id"], run_id)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["individual_id"] for row in rows} == {people["head"]}
    assert rows[0]["section"] == "identity"
    assert [row["status"] for row in rows if row["reference"] == code] == ["RECEIVED"]
    assert len(rows) == done["commit"]["rows"] == query("SELECT count(*) FROM marts.mart_individual_record"
                                                        " WHERE individual_id = %s", people["head"])[0][0]
    assert query("SELECT actor, details->>'rows' FROM ledger.audit_events WHERE action = 'individual_record.export'"
                 " AND object_id = %s", path.name) == [("maker", str(done["commit"]["rows"]))]
    for wrong, message in ((str(uuid.uuid4()), "no individual with id"), ("1 OR 1=1", "must be an individual's id")):
        with pytest.raises(WorkflowError, match=message):
            run_export(RECORD_EXPORT, options={"individual_id": wrong}, maker="maker", checker="checker",
                       run_id=uuid.uuid4().hex)
