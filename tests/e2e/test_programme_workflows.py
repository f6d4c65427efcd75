"""Plans, enrolment and status changes through the running Airflow services, as a maker and a checker use them."""

from __future__ import annotations

import uuid

import pytest

from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.workflows.direct import run_steps as run_request
from tests.e2e.approvals import approved
from tests.e2e.browser import OpenPage, sign_in_to_airflow
from tests.e2e.people import query, register_region

pytestmark = [pytest.mark.e2e, pytest.mark.celery]  # also run on Celery workers (the celery tier)
pytest_plugins = ["tests.e2e.browser"]  # the checker's browser: screenshots of the requests


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region(database)


def test_a_plan_is_defined_people_enrolled_and_statuses_changed(airflow, airflow_services, region: str,
                                                                pages: OpenPage) -> None:
    maker, checker = airflow("maker"), airflow("checker")
    page = pages("checker")
    sign_in_to_airflow(page, airflow_services, "checker")
    seen_by = (page, airflow_services)
    code = f"E2E-{uuid.uuid4().hex[:6].upper()}"
    plan = {"code": code, "name": "Elderly grant", "type": "INDIVIDUAL", "valid_from": "2026-01-01",
            "currency": "KES", "max_beneficiaries": 10,
            "default_criteria": {"ACTIVE": {"all": [{"field": "age", "op": ">=", "value": 60}]}},
            "entitlement": {"fixed_amount": "2000.00"}}
    approved(maker, checker, "benefit_plan_define", {"plan": plan},
             [f"plan version:** {code} version 1: Elderly grant (INDIVIDUAL)", "changes:**"], seen_by=seen_by)
    assert query("SELECT version, status FROM programmes.benefit_plans WHERE plan_code = %s", code) == [(1, "ACTIVE")]

    everyone = {"all": [{"field": "region", "op": "=", "value": region}]}
    approved(maker, checker, "enrolment", {"plan": code, "target_status": "POTENTIAL", "criteria": everyone},
             ["matching:** 6", "already enrolled:** 0", "would be added:** 6", "over max beneficiaries:** 0"],
             seen_by=seen_by)
    elders = {"all": [{"field": "region", "op": "=", "value": region}, {"field": "age", "op": ">=", "value": 60}]}
    approved(maker, checker, "beneficiary_status",
             {"plan": code, "status": "ACTIVE", "reason": "took up", "criteria": elders},
             ["beneficiaries changing:** 3", "POTENTIAL → ACTIVE: 3"], seen_by=seen_by)
    assert dict(query("SELECT status, count(*) FROM programmes.beneficiaries WHERE plan_code = %s GROUP BY 1",
                      code)) == {"ACTIVE": 3, "POTENTIAL": 3}
    assert query("SELECT DISTINCT maker, checker, reason FROM programmes.beneficiary_status_history"
                 " WHERE plan_code = %s AND from_status = 'POTENTIAL'", code) == [("maker", "checker", "took up")]


def test_beneficiaries_are_imported_into_a_plan_and_exported(airflow, database, region: str) -> None:
    maker, checker = airflow("maker"), airflow("checker")
    code = f"E2E-{uuid.uuid4().hex[:6].upper()}"
    run_request(DEFINE, options={"plan": {"code": code, "name": "School grant", "type": "INDIVIDUAL",
                                          "valid_from": "2026-01-01", "currency": "KES",
                                          "beneficiary_data_schema": {"properties": {"grade": {"type": "integer"}}}}},
                maker="maker", checker="checker", run_id=uuid.uuid4().hex)  # set up directly: not under test here
    (child,) = query("SELECT individual_id FROM registry.individuals WHERE region = %s AND role = 'SON' LIMIT 1",
                     region)[0]
    (database.inbox / f"{code}.csv").write_text(f"individual_id,status,grade\n{child},ACTIVE,5\n")
    approved(maker, checker, "beneficiaries_import", {"plan": code, "file": f"{code}.csv", "mode": "create"},
             ["rows in file:** 1", "beneficiaries to enrol:** 1", "of which active:** 1"])
    assert query("SELECT status, attributes FROM programmes.beneficiaries WHERE plan_code = %s", code) == [
        ("ACTIVE", {"grade": 5})]

    response = maker.trigger("beneficiaries_export", {"plan": code, "filter": {"all": [
        {"field": "grade", "op": ">=", "value": 5}]}, "columns": ["beneficiary_id", "status", "grade"]})
    run_id = response.json()["dag_run_id"]
    assert maker.wait_for_run("beneficiaries_export", run_id) == "success"
    ((details,),) = query("SELECT details FROM ledger.audit_events WHERE action = 'beneficiaries.export'"
                          " AND actor = 'maker' AND details->'parameters'->>'plan' = %s", code)
    assert details["rows"] == 1 and details["columns"] == ["beneficiary_id", "status", "grade"]


def test_bad_criteria_fail_the_run_before_any_checker_is_asked(airflow, region: str) -> None:
    maker = airflow("maker")
    code = f"E2E-{uuid.uuid4().hex[:6].upper()}"
    run_request(DEFINE, options={"plan": {"code": code, "name": "Any", "type": "GROUP", "valid_from": "2026-01-01",
                                          "currency": "KES"}},
                maker="maker", checker="checker", run_id=uuid.uuid4().hex)  # set up directly: not under test here
    response = maker.trigger("enrolment", {"plan": code, "target_status": "ACTIVE",
                                           "criteria": {"all": [{"field": "shoe_size", "op": ">", "value": 40}]}})
    run_id = response.json()["dag_run_id"]
    assert maker.wait_for_run("enrolment", run_id) == "failed"
    states = maker.task_states("enrolment", run_id)
    assert states["validate"] == "failed" and states["approve"] in (None, "upstream_failed")
    ((status, message),) = query("SELECT status, message FROM intake.requests WHERE run_id = %s", run_id)
    assert status == "INVALID" and "unknown field 'shoe_size'" in message
