"""The registry workflows through the running Airflow services, as a maker and a checker use them."""

from __future__ import annotations

import csv
import shutil
import uuid
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from benefitflow.core import db
from tests.e2e.browser import OpenPage, open_pending_request, screenshot, sign_in_to_airflow

pytestmark = [pytest.mark.e2e, pytest.mark.celery]  # also run on Celery workers (the celery tier)
pytest_plugins = ["tests.e2e.browser"]  # the checker's browser: a screenshot of the export's request

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "openimis-individuals-sample.csv"


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def test_the_openimis_sample_is_imported_with_approval(airflow, database) -> None:
    maker, checker = airflow("maker"), airflow("checker")
    shutil.copyfile(SAMPLE, database.inbox / SAMPLE.name)
    response = maker.trigger("individuals_import", {"file": SAMPLE.name, "mode": "create"})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    maker.wait_until_parked("individuals_import", run_id)

    (request,) = [p for p in checker.pending_approvals() if p["task_instance"]["dag_run_id"] == run_id]
    body = request["body"]
    for line in ("rows in file:** 100", "valid rows:** 100", "invalid rows:** 0", "individuals to create:** 100",
                 "households to create:** 20", "likely duplicates:** 0", "error report:**", "checked with:**"):
        assert line in body, body
    assert checker.answer("individuals_import", run_id, "Approve").status_code == 200
    assert checker.wait_for_run("individuals_import", run_id) == "success"

    (upload_id,) = query("SELECT upload_id FROM intake.uploads WHERE run_id = %s", run_id)[0]
    assert query("SELECT count(*), count(DISTINCT household_code) FROM registry.individuals"
                 " WHERE registered_by_upload = %s", upload_id) == [(100, 20)]
    assert query("SELECT status, maker, checker, individuals_created FROM marts.mart_uploads WHERE upload_id = %s",
                 upload_id) == [("APPLIED", "maker", "checker", 100)]
    assert query("SELECT count(*) FROM marts.mart_registry_individuals m JOIN registry.individuals i"
                 " USING (individual_id) WHERE i.registered_by_upload = %s AND m.able_bodied IS NOT NULL",
                 upload_id) == [(100,)]

    # Personal data: the maker, the registry's checkers and the engineer download; another maker, another
    # group's checker and a user only allowed to read DAGs do not, and each attempt is in the audit trail.
    original = download(checker, f"/benefitflow/uploads/{upload_id}/original")
    assert original.status_code == 200 and original.content == SAMPLE.read_bytes()
    report = download(maker, f"/benefitflow/uploads/{upload_id}/error-report")
    assert report.status_code == 200 and report.text.startswith("file,row,column,rule,value,message")
    suite = download(checker, f"/benefitflow/uploads/{upload_id}/suite")  # the generated suite, as it ran
    assert suite.status_code == 200 and suite.headers["content-type"] == "application/json"
    assert suite.json()["name"] == "individuals_create" and ("expect_column_values_to_not_be_null", "first_name") in [
        (e["type"], e["kwargs"].get("column")) for e in suite.json()["expectations"]]
    assert download(airflow("engineer"), f"/benefitflow/uploads/{upload_id}/original").status_code == 200
    for other in ("maker2", "payment_checker"):
        refused = download(airflow(other), f"/benefitflow/uploads/{upload_id}/original")
        assert refused.status_code == 403 and "personal data" in refused.text, (other, refused.text)
    assert sorted(query("SELECT actor, outcome FROM ledger.audit_events WHERE action = 'upload.download_original'"
                        " AND object_id = %s", str(upload_id))) == [
        ("checker", "DOWNLOADED"), ("engineer", "DOWNLOADED"), ("maker2", "REFUSED"), ("payment_checker", "REFUSED")]
    assert requests.get(f"{maker.base_url}/benefitflow/uploads/{upload_id}/original", timeout=30).status_code == 401
    assert download(maker, "/benefitflow/uploads/999999999/original").status_code == 404


def download(client, path: str) -> requests.Response:
    return requests.get(f"{client.base_url}{path}", headers=client._headers(), timeout=30)


def test_a_broken_file_fails_the_run_with_the_reason_and_is_kept(airflow, database) -> None:
    maker = airflow("maker")
    name = f"broken-{uuid.uuid4().hex[:6]}.csv"
    (database.inbox / name).write_text("first_name,last_name,dob,shoe_size\nA,B,1990-01-01,42\n")
    run_id = maker.trigger("individuals_import", {"file": name})
    run_id = run_id.json()["dag_run_id"]
    assert maker.wait_for_run("individuals_import", run_id) == "failed"
    assert maker.task_states("individuals_import", run_id)["intake"] == "failed"
    ((status, message, stored),) = query("SELECT status, message, stored_path FROM intake.uploads WHERE run_id = %s",
                                         run_id)
    assert status == "INVALID" and "unknown column(s): shoe_size" in message and name in message
    assert Path(stored).is_file()
    (upload_id,) = query("SELECT upload_id FROM intake.uploads WHERE run_id = %s", run_id)[0]
    assert download(maker, f"/benefitflow/uploads/{upload_id}/original").content == (database.inbox / name).read_bytes()

    # The task user owns the outbox: a link it put where the original was is not followed to the services' secrets.
    Path(stored).unlink()
    Path(stored).symlink_to(database.home / "secrets.json")
    refused = download(maker, f"/benefitflow/uploads/{upload_id}/original")
    assert refused.status_code == 404 and database.secrets["jwt_secret"] not in refused.text


def test_registry_export_of_names_is_approved_first_and_audited(airflow, database, pages: OpenPage) -> None:
    """first_name is personal: the run asks a registry checker, who reads the filter, columns and row count."""
    maker, checker = airflow("maker"), airflow("checker")
    document = {"all": [{"field": "educated_level", "op": "=", "value": "tertiary"},
                        {"field": "age", "op": ">=", "value": 18}]}
    response = maker.trigger("registry_export", {"filter": document, "columns": ["individual_id", "first_name", "age"]})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    maker.wait_until_parked("registry_export", run_id)
    expected = query("SELECT count(*) FROM registry.individuals WHERE attributes->>'educated_level' = 'tertiary'"
                     " AND date_part('year', age(current_date, dob)) >= 18")[0][0]
    (request,) = [p for p in checker.pending_approvals() if p["task_instance"]["dag_run_id"] == run_id]
    for line in ("**Maker:** maker", "personal columns:** first\\_name", f"rows to export:** {expected}",
                 "columns:** individual\\_id, first\\_name, age", "educated\\_level"):  # as Markdown: _ escaped
        assert line in request["body"], request["body"]
    page = pages("checker")
    sign_in_to_airflow(page, database, "checker")
    open_pending_request(page, database, run_id)
    expect(page.get_by_role("heading", name="What", exact=True)).to_be_visible()
    screenshot(page, "approval_request_registry_export")
    assert not list(database.outbox.glob(f"exports/registry-request*-{run_id.replace(':', '_').replace('+', '_')}*"))
    assert checker.answer("registry_export", run_id, "Approve").status_code == 200
    assert checker.wait_for_run("registry_export", run_id) == "success"
    assert maker.task_states("registry_export", run_id)["export"] == "skipped"
    ((actor, details),) = query("SELECT actor, details FROM ledger.audit_events WHERE action = 'registry.export'"
                                " AND details->>'path' LIKE %s", f"%{run_id.replace(':', '_').replace('+', '_')}%")
    assert actor == "maker" and details["filter"] == document and details["personal_columns"] == ["first_name"]
    with open(details["path"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == details["rows"] == expected > 0 and all(int(r["age"]) >= 18 for r in rows)


def test_registry_export_without_personal_columns_is_written_at_once(airflow) -> None:
    maker = airflow("maker")
    response = maker.trigger("registry_export", {"filter": {"all": [{"field": "age", "op": ">=", "value": 18}]},
                                                 "columns": ["individual_id", "age", "region"]})
    run_id = response.json()["dag_run_id"]
    assert maker.wait_for_run("registry_export", run_id) == "success"
    states = maker.task_states("registry_export", run_id)
    assert states["export"] == "success" and states["approve"] == states["commit"] == "skipped"


def test_a_bad_filter_fails_the_export_with_a_clear_message(airflow) -> None:
    maker = airflow("maker")
    response = maker.trigger("registry_export", {"filter": {"all": [{"field": "salary", "op": ">", "value": 1}]}})
    run_id = response.json()["dag_run_id"]
    assert maker.wait_for_run("registry_export", run_id) == "failed"
