"""Plans, enrolment and status changes on a real PostgreSQL with real dbt: each rule with small data."""

from __future__ import annotations

import csv
import uuid
from typing import Any

import psycopg2
import pytest

from benefitflow.core import db
from benefitflow.core.errors import WorkflowError
from benefitflow.programmes.beneficiaries_export import beneficiaries_of
from benefitflow.programmes.beneficiaries_import import WORKFLOW as BENEFICIARIES
from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
from benefitflow.programmes.benefit_plan_close import WORKFLOW as CLOSE
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.programmes.plans import PlanError
from benefitflow.workflows import export_files
from benefitflow.workflows.direct import run_steps as run_upload
from benefitflow.workflows.export_files import ExportError
from tests.integration.programme_data import in_region, plan_document, query, register_region, run, tag


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region()


def beneficiaries(code: str) -> dict[str, int]:
    return dict(query("SELECT status, count(*) FROM programmes.beneficiaries WHERE plan_code = %s GROUP BY 1", code))


def test_a_plan_is_defined_then_versioned(database) -> None:
    code = f"CT-{tag()}"
    result = run(DEFINE, plan=plan_document(code))
    assert result["proposal"]["plan_version"] == f"{code} version 1: Plan {code} (INDIVIDUAL)"
    assert query("SELECT version, plan_type, status, currency FROM programmes.benefit_plans WHERE plan_code = %s",
                 code) == [(1, "INDIVIDUAL", "ACTIVE", "KES")]

    changed = run(DEFINE, plan=plan_document(code, name="Cash transfer", max_beneficiaries=1000))
    assert changed["proposal"]["changes"] == ["max_beneficiaries", "name"]
    assert query("SELECT version, name, max_beneficiaries FROM programmes.benefit_plans WHERE plan_code = %s",
                 code) == [(2, "Cash transfer", 1000)]
    assert [v for (v,) in query("SELECT version FROM ledger.plan_versions WHERE plan_code = %s ORDER BY 1", code)] == [1, 2]

    for document, message in [
        (plan_document(code, name="Cash transfer", max_beneficiaries=1000), "identical to version 2"),
        (plan_document(code, type="GROUP"), "its type cannot change"),
        (plan_document(code.lower()), "differs only in case"),
    ]:
        with pytest.raises(WorkflowError, match=message):
            run(DEFINE, plan=document)
    assert query("SELECT count(*) FROM ledger.plan_versions WHERE plan_code = %s", code) == [(2,)]


def test_a_plan_file_in_yaml_is_accepted(database, inbox_file) -> None:
    code = f"HH-{tag()}"
    path = inbox_file(f"{code}.yaml", f"""
code: {code}
name: Household grant
type: GROUP
valid_from: 2026-01-01
currency: KES
max_beneficiaries: 3
default_criteria:
  ACTIVE: {{all: [{{field: household_size, op: ">=", value: 3}}]}}
entitlement:
  fixed_amount: "2000.00"
  per_member: {{amount: "300.00", criteria: {{all: [{{field: age, op: "<", value: 18}}]}}, max_members: 5}}
""")
    run(DEFINE, file=path.name)
    assert query("SELECT plan_type, max_beneficiaries, valid_from::text FROM programmes.benefit_plans"
                 " WHERE plan_code = %s", code) == [("GROUP", 3, "2026-01-01")]


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "Additional properties are not allowed"),
    ({"type": "FAMILY"}, "type: 'FAMILY' is not one of"),
    ({"valid_from": "2026-02-30"}, "valid_from: '2026-02-30' is not a real date"),
    ({"valid_to": "2025-01-01"}, "valid_to 2025-01-01 is before valid_from"),
    ({"currency": "kes"}, "currency"),
    ({"max_beneficiaries": 0}, "max_beneficiaries"),
    ({"beneficiary_data_schema": {"type": "object", "properties": {"x": {"type": "strange"}}}}, "not a valid JSON Schema"),
    ({"beneficiary_data_schema": {"properties": {"region": {"type": "string"}}}}, "already a registry or beneficiary field"),
    ({"beneficiary_data_schema": {"properties": {"Bad Name": {"type": "string"}}}}, "must match"),
    ({"default_criteria": {"ACTIVE": {"all": [{"field": "salary", "op": "=", "value": 1}]}}},
     "default_criteria.ACTIVE: .*salary"),
    ({"default_criteria": {"ACTIVE": {"all": [{"field": "age", "op": "~", "value": 1}]}}}, "default_criteria.ACTIVE"),
    ({"default_criteria": {"ACTIVE": {"all": [{"field": "age", "op": ">", "value": "old"}]}}}, "default_criteria.ACTIVE"),
    ({"entitlement": {"fixed_amount": "-5"}}, "entitlement.fixed_amount: '-5' is not an amount"),
    ({"entitlement": {"cap": "100"}}, "needs at least one amount"),
    ({"entitlement": {"fixed_amount": "1", "bonus": "2"}}, "Additional properties"),
    ({"entitlement": {"top_ups": [{"criteria": {"all": [{"field": "grade", "op": ">", "value": "x"}]}, "amount": "5"}]}},
     r"entitlement.top_ups\[0\].criteria"),
])
def test_an_invalid_plan_gets_a_clear_error_and_changes_nothing(database, change: dict, message: str) -> None:
    code = f"BAD-{tag()}"
    with pytest.raises(WorkflowError, match=message):
        run(DEFINE, plan=plan_document(code, **change))
    assert query("SELECT count(*) FROM ledger.plan_versions WHERE plan_code = %s", code) == [(0,)]
    assert query("SELECT status FROM intake.requests WHERE plan_code = %s", code) == [("INVALID",)]


def test_enrolment_by_criteria_counts_and_respects_capacity(database, region: str) -> None:
    code = f"EN-{tag()}"
    run(DEFINE, plan=plan_document(code, max_beneficiaries=6))
    women = {"all": [in_region(region), {"field": "sex", "op": "=", "value": "F"}, {"field": "age", "op": ">=", "value": 18}]}
    first = run(ENROLMENT, plan=code, target_status="ACTIVE", criteria=women)["proposal"]
    assert (first["matching"], first["already_enrolled"], first["would_be_added"], first["over_max_beneficiaries"]) == (4, 0, 4, 0)
    assert first["projected_cost_per_cycle"] == "6,500.00 KES"  # 4 × 1500.00, one severe disability + 500.00
    assert beneficiaries(code) == {"ACTIVE": 4}

    everyone = run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region)]})["proposal"]
    assert (everyone["matching"], everyone["already_enrolled"], everyone["would_be_added"],
            everyone["over_max_beneficiaries"]) == (12, 4, 2, 6)
    assert beneficiaries(code) == {"ACTIVE": 4, "POTENTIAL": 2}


def test_enrolment_uses_the_default_criteria_and_refuses_bad_ones(database, region: str) -> None:
    code = f"DF-{tag()}"
    run(DEFINE, plan=plan_document(code, default_criteria={"POTENTIAL": {"all": [in_region(region), {
        "field": "role", "op": "=", "value": "DAUGHTER"}]}}))
    assert run(ENROLMENT, plan=code, target_status="POTENTIAL")["proposal"]["would_be_added"] == 4
    for options, message in [
        ({"target_status": "ACTIVE"}, "no default criteria for ACTIVE"),
        ({"target_status": "POTENTIAL", "criteria": {"all": [{"field": "salary", "op": ">", "value": 1}]}}, "salary"),
        ({"target_status": "POTENTIAL", "criteria": {"all": [{"field": "age", "op": "LIKE", "value": 1}]}}, "LIKE"),
        ({"target_status": "POTENTIAL", "criteria": {"all": [{"field": "age", "op": ">", "value": "1'; DROP"}]}}, "age"),
        ({"target_status": "SUSPENDED"}, "target_status must be POTENTIAL or ACTIVE"),
    ]:
        with pytest.raises(WorkflowError, match=message):
            run(ENROLMENT, plan=code, **options)
    with pytest.raises(WorkflowError, match="no benefit plan"):
        run(ENROLMENT, plan="NOPE-" + tag(), target_status="ACTIVE", criteria={"all": []})
    assert beneficiaries(code) == {"POTENTIAL": 4}


def test_a_group_plan_enrols_households(database, region: str) -> None:
    code = f"GR-{tag()}"
    children = {"amount": "5.25", "criteria": {"all": [{"field": "age", "op": "<", "value": 18}]}}
    run(DEFINE, plan=plan_document(code, type="GROUP", beneficiary_data_schema={}, default_criteria={},
                                   entitlement={"fixed_amount": "10", "per_member": children}))
    proposal = run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [
        in_region(region), {"field": "household_size", "op": ">=", "value": 3}]})["proposal"]
    assert proposal["would_be_added"] == 4
    assert proposal["projected_cost_per_cycle"] == "61.00 KES"  # 4 × (10.00 + one child × 5.25)
    assert query("SELECT count(*), count(household_code), count(individual_id) FROM programmes.beneficiaries"
                 " WHERE plan_code = %s", code) == [(4, 4, 0)]


def test_status_changes_follow_the_transition_table_and_keep_history(database, region: str) -> None:
    code = f"ST-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region)]})
    heads = {"all": [{"field": "role", "op": "=", "value": "HEAD"}]}
    taken_up = run(STATUS, plan=code, status="ACTIVE", reason="took up the benefit", criteria=heads)["proposal"]
    assert (taken_up["beneficiaries_changing"], taken_up["changes"]) == (4, {"POTENTIAL → ACTIVE": 4})

    run(STATUS, plan=code, status="GRADUATED", reason="moved away",
        criteria={"all": [{"field": "role", "op": "=", "value": "SPOUSE"}]})
    again = run(STATUS, plan=code, status="ACTIVE", reason="back", criteria={"any": [
        {"field": "status", "op": "=", "value": "GRADUATED"}, {"field": "role", "op": "=", "value": "HEAD"}]})["proposal"]
    assert again["beneficiaries_changing"] == 0
    assert again["not_allowed"] == {"GRADUATED cannot become ACTIVE": 4, "already ACTIVE": 4}
    assert beneficiaries(code) == {"ACTIVE": 4, "GRADUATED": 4, "POTENTIAL": 4}

    history = query(
        "SELECT h.from_status, h.to_status, h.reason, h.maker, h.checker FROM programmes.beneficiary_status_history h"
        " JOIN registry.individuals i USING (individual_id) WHERE h.plan_code = %s AND i.role = 'HEAD'"
        " ORDER BY h.version", code)
    assert set(history) == {(None, "POTENTIAL", "enrolment", "maker", "checker"),
                            ("POTENTIAL", "ACTIVE", "took up the benefit", "maker", "checker")}
    with pytest.raises(WorkflowError, match="give a reason"):
        run(STATUS, plan=code, status="SUSPENDED", reason=" ", criteria=heads)


def test_closing_a_plan_graduates_everyone_and_closes_it(database, region: str) -> None:
    code = f"CL-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region)]})
    run(STATUS, plan=code, status="ACTIVE", reason="took up",
        criteria={"all": [{"field": "role", "op": "=", "value": "HEAD"}]})
    closed = run(CLOSE, plan=code, reason="programme ended")["proposal"]
    assert closed["changes"] == {"ACTIVE → GRADUATED": 4, "POTENTIAL → GRADUATED": 8}
    assert beneficiaries(code) == {"GRADUATED": 12}
    assert query("SELECT status, version FROM programmes.benefit_plans WHERE plan_code = %s", code) == [("CLOSED", 2)]
    with pytest.raises(WorkflowError, match="is closed"):
        run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": []})
    with pytest.raises(WorkflowError, match="is closed"):
        run(DEFINE, plan=plan_document(code, name="again"))


def test_a_rejected_request_changes_nothing(database, region: str) -> None:
    code = f"RJ-{tag()}"
    rejected = run(DEFINE, checker=None, plan=plan_document(code))
    assert query("SELECT count(*) FROM ledger.plan_versions WHERE plan_code = %s", code) == [(0,)]
    assert query("SELECT status FROM intake.requests WHERE request_id = %s", rejected["request_id"]) == [("REJECTED",)]


def test_the_ledger_refuses_a_forbidden_transition_whoever_writes_it(database, region: str) -> None:
    code = f"LG-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region)]})
    (beneficiary_id, commit_id), *_ = query("SELECT beneficiary_id, commit_id FROM ledger.beneficiary_versions"
                                            " WHERE plan_code = %s", code)
    with pytest.raises(psycopg2.Error, match="not in ledger.beneficiary_status_transitions"), \
            db.transaction(database.owner_database_url) as cur:
        cur.execute("INSERT INTO ledger.beneficiary_versions (beneficiary_id, version, plan_code, individual_id, status,"
                    " commit_id) SELECT beneficiary_id, 2, plan_code, individual_id, 'SUSPENDED', commit_id"
                    " FROM ledger.beneficiary_versions WHERE beneficiary_id = %s", (beneficiary_id,))


def test_a_plans_beneficiaries_are_exported_with_a_filter_and_audited(database, region: str) -> None:
    code = f"EX-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region)]})
    run(STATUS, plan=code, status="ACTIVE", reason="took up",
        criteria={"all": [{"field": "role", "op": "=", "value": "HEAD"}]})
    with db.transaction() as cur:
        source = beneficiaries_of(cur, {"plan": code})
        done = export_files.export(cur, source, document={"all": [{"field": "status", "op": "=", "value": "ACTIVE"}]},
                                   columns=None, target_dir=database.outbox / "exports", user="maker", label="t")
    with done.path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == done.rows == 4
    assert {row["status"] for row in rows} == {"ACTIVE"} and {row["region"] for row in rows} == {region}
    assert list(rows[0])[:3] == ["beneficiary_id", "status", "individual_id"] and "school" in rows[0]
    assert query("SELECT actor, details->>'rows' FROM ledger.audit_events WHERE action = 'beneficiaries.export'"
                 " AND object_id = %s", done.path.name) == [("maker", "4")]
    with pytest.raises(ExportError, match="unknown column"), db.transaction() as cur:
        export_files.export(cur, beneficiaries_of(cur, {"plan": code}), document={}, columns=["salary"],
                            target_dir=database.outbox / "exports", user="maker", label="t")
    with pytest.raises(PlanError, match="no benefit plan"), db.transaction() as cur:
        beneficiaries_of(cur, {"plan": "NOPE"})


def test_a_file_of_ids_chooses_whose_status_changes(database, region: str, inbox_file) -> None:
    code = f"IDS-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region)]})
    heads = [str(i) for (i,) in query("SELECT individual_id FROM registry.individuals WHERE region = %s"
                                      " AND role = 'HEAD' ORDER BY 1", region)]
    ids = inbox_file(f"{code}-take-up.csv", "individual_id\n" + "\n".join(heads[:2]) + "\n")
    result = run(STATUS, plan=code, status="ACTIVE", reason="came to the pay point", file=ids.name)
    assert (result["proposal"]["rows_in_file"], result["proposal"]["beneficiaries_changing"]) == (2, 2)
    assert beneficiaries(code) == {"ACTIVE": 2, "POTENTIAL": 10}
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", result["proposal"]["upload_id"]) == [
        ("APPLIED",)]

    stranger = str(uuid.uuid4())
    unknown = inbox_file(f"{code}-unknown.csv", f"individual_id\n{heads[2]}\n{stranger}\nnot-an-id\n")
    with pytest.raises(WorkflowError, match=rf"{unknown.name}: ids that name no beneficiary of plan {code} \(rows 2, 3"):
        run(STATUS, plan=code, status="ACTIVE", reason="x", file=unknown.name)
    ((upload_id, status),) = query("SELECT upload_id, status FROM intake.uploads WHERE file_name = %s", unknown.name)
    assert status == "INVALID"
    assert query("SELECT row_number, column_name, value FROM intake.row_errors WHERE upload_id = %s ORDER BY 1",
                 upload_id) == [(2, "individual_id", stranger), (3, "individual_id", "not-an-id")]
    assert beneficiaries(code) == {"ACTIVE": 2, "POTENTIAL": 10}

    households = inbox_file(f"{code}-households.csv", "household_code\nH1\n")
    with pytest.raises(WorkflowError, match="needs one id column"):
        run(STATUS, plan=code, status="ACTIVE", reason="x", file=households.name)
    with pytest.raises(WorkflowError, match="one of the two"):
        run(STATUS, plan=code, status="ACTIVE", reason="x", file=ids.name, criteria={"all": []})


def run_import(path, **options: Any) -> dict:
    return run_upload(BENEFICIARIES, file=path.name, options={"on_invalid_rows": "reject_file", **options},
                      maker="maker", checker="checker", run_id=uuid.uuid4().hex)


def test_beneficiaries_are_imported_with_the_plans_variables(database, region: str, inbox_file) -> None:
    code = f"BI-{tag()}"
    run(DEFINE, plan=plan_document(code, max_beneficiaries=3))
    people = [str(i) for (i,) in query("SELECT individual_id FROM registry.individuals WHERE region = %s"
                                       " ORDER BY individual_id", region)]
    good = inbox_file(f"{code}.csv", "individual_id,status,school,grade\n"
                      f"{people[0]},ACTIVE,Hill School,3\n{people[1]},,,\n")
    result = run_import(good, plan=code, mode="create")
    assert (result["proposal"]["beneficiaries_to_enrol"], result["proposal"]["of_which_active"]) == (2, 1)
    assert query("SELECT status, attributes FROM programmes.beneficiaries WHERE plan_code = %s ORDER BY status",
                 code) == [("ACTIVE", {"school": "Hill School", "grade": 3}), ("POTENTIAL", {})]
    assert query("SELECT plan_code, status FROM intake.uploads WHERE upload_id = %s", result["upload_id"]) == [
        (code, "APPLIED")]

    stranger = uuid.uuid4()
    bad = inbox_file(f"{code}-bad.csv", "individual_id,grade\n"
                     f"{people[0]},4\n{stranger},1\n{people[2]},zero\n{people[3]},2\n{people[4]},2\n")
    with pytest.raises(WorkflowError, match="rows are invalid"):
        run_import(bad, plan=code, mode="create")
    rules = {(row, rule) for row, rule in query("SELECT row_number, rule FROM intake.row_errors WHERE upload_id ="
                                                " (SELECT max(upload_id) FROM intake.uploads)")}
    assert rules == {(1, "beneficiary:already_enrolled"), (2, "individual_id:unknown"),
                     (3, "grade:column_values_to_match_regex"), (5, "plan:max_beneficiaries")}
    assert query("SELECT count(*) FROM programmes.beneficiaries WHERE plan_code = %s", code) == [(2,)]

    (active_id,) = query("SELECT beneficiary_id FROM programmes.beneficiaries WHERE plan_code = %s"
                         " AND status = 'ACTIVE'", code)[0]
    update = inbox_file(f"{code}-update.csv", f"id,grade\n{active_id},4\n{uuid.uuid4()},1\n")
    updated = run_import(update, plan=code, mode="update", on_invalid_rows="skip_invalid_rows")
    assert updated["proposal"]["beneficiaries_to_update"] == 1
    assert query("SELECT version, status, attributes FROM programmes.beneficiaries WHERE beneficiary_id = %s",
                 active_id) == [(2, "ACTIVE", {"school": "Hill School", "grade": 4})]


def test_a_group_plans_beneficiaries_are_households(database, region: str, inbox_file) -> None:
    code = f"BG-{tag()}"
    run(DEFINE, plan=plan_document(code, type="GROUP", beneficiary_data_schema={}, default_criteria={},
                                   entitlement={"fixed_amount": "10"}))
    households = [h for (h,) in query("SELECT DISTINCT household_code FROM registry.individuals WHERE region = %s"
                                      " ORDER BY 1", region)]
    path = inbox_file(f"{code}.csv", "group_code\n" + "\n".join(households[:2]) + "\n")
    run_import(path, plan=code, mode="create")
    assert query("SELECT count(*), count(household_code) FROM programmes.beneficiaries WHERE plan_code = %s",
                 code) == [(2, 2)]
    with pytest.raises(WorkflowError, match="plan: no benefit plan"):
        run_import(path, plan="NOPE", mode="create")


def test_new_households_in_a_group_plans_file_join_the_registry(database, region: str, inbox_file) -> None:
    code = f"NH-{tag()}"
    run(DEFINE, plan=plan_document(code, type="GROUP", default_criteria={}, entitlement={"fixed_amount": "10"},
                                   beneficiary_data_schema={"type": "object", "required": ["village"],
                                                            "properties": {"village": {"type": "string"}}}))
    registered = [h for (h,) in query("SELECT DISTINCT household_code FROM registry.individuals WHERE region = %s"
                                      " ORDER BY 1", region)]
    new, surname = f"H{tag()}", f"Achieng{tag()}"
    header = "group_code,first_name,last_name,dob,sex,individual_role,recipient_info,region,village,status"
    path = inbox_file(f"{code}.csv", "\n".join([
        header,
        f"{registered[0]},,,,,,,,Kilima,ACTIVE",
        f"{new},Akinyi,{surname},1985-01-01,F,HEAD,1,{region},Ziwani,",
        f"{new},Otieno,{surname},1983-01-01,M,SPOUSE,2,{region},,",
        f"{new},Baraka,{surname},2015-01-01,M,SON,0,{region},,",
    ]) + "\n")
    result = run_import(path, plan=code, mode="create")
    proposal = result["proposal"]
    assert (proposal["beneficiaries_to_enrol"], proposal["new_people_to_register"],
            proposal["new_households_to_register"]) == (2, 3, 1)
    assert query("SELECT first_name, role, recipient_type FROM registry.individuals WHERE household_code = %s"
                 " ORDER BY 1", new) == [("Akinyi", "HEAD", "PRIMARY"), ("Baraka", "SON", None),
                                         ("Otieno", "SPOUSE", "SECONDARY")]
    assert query("SELECT household_code, status, attributes FROM programmes.beneficiaries WHERE plan_code = %s"
                 " ORDER BY status", code) == [(registered[0], "ACTIVE", {"village": "Kilima"}),
                                               (new, "POTENTIAL", {"village": "Ziwani"})]

    broken = inbox_file(f"{code}-broken.csv", "\n".join([
        header,
        f"{registered[1]},Extra,{surname},1990-01-01,F,,,{region},V,",
        f"{registered[2]},,,,,,,,V,",
        f"{registered[2]},,,,,,,,V,",
        f"NOPE{tag()},,,,,,,,V,",
        f"{new}2,Mary,{surname},1980-01-01,F,HEAD,1,{region},,",
        f"{new}2,John,{surname},1979-01-01,M,SPOUSE,2,{region},V,",
        f"{new}3,,{surname},1979-01-01,M,HEAD,1,{region},V,",
        f"{new}4,Ann,{surname},1990-01-01,F,SPOUSE,1,{region},,",
        f"{registered[0]},,,,,,,,V,",
    ]) + "\n")
    with pytest.raises(WorkflowError, match="9 of 9 rows are invalid"):
        run_import(broken, plan=code, mode="create")
    rules = {(row, rule) for row, rule in query("SELECT row_number, rule FROM intake.row_errors WHERE upload_id ="
                                                " (SELECT max(upload_id) FROM intake.uploads)")}
    assert {(1, "household:already_registered"), (2, "household_code:named_twice"),
            (3, "household_code:named_twice"), (4, "household_code:unknown"), (5, "village:required"),
            (6, "household:variables_on_a_members_row"), (7, "person:new_person_incomplete"),
            (8, "household:no_head"), (9, "beneficiary:already_enrolled")} <= rules
    assert query("SELECT count(*) FROM registry.individuals WHERE last_name = %s", surname) == [(3,)]
    assert beneficiaries(code) == {"ACTIVE": 1, "POTENTIAL": 1}


def test_an_enrolment_approved_after_the_plan_filled_up_is_not_applied(database, region: str) -> None:
    from benefitflow.core.errors import CommitConflict
    from benefitflow.workflows.commit import commit_step
    from benefitflow.workflows.direct import record_direct_decision
    from benefitflow.workflows.intake import intake_step
    from benefitflow.workflows.propose import propose_step
    from benefitflow.workflows.validate import validate_step

    code = f"FU-{tag()}"
    run(DEFINE, plan=plan_document(code, max_beneficiaries=4))
    options = {"plan": code, "target_status": "ACTIVE", "criteria": {"all": [in_region(region), {
        "field": "role", "op": "=", "value": "HEAD"}]}}
    request = intake_step(workflow=ENROLMENT, options=options, user="maker", dag_id="late", run_id="a")
    validated = validate_step(workflow=ENROLMENT, taken=request, options=options, user="maker")
    proposal = propose_step(workflow=ENROLMENT, taken=request, validated=validated)
    assert proposal["would_be_added"] == 4
    run(ENROLMENT, plan=code, target_status="POTENTIAL", criteria={"all": [in_region(region), {
        "field": "role", "op": "=", "value": "SPOUSE"}]})  # another run fills the plan meanwhile
    assert record_direct_decision("enrolment", "late", "a", "maker", "checker", proposal,
                                  request_id=request["request_id"])
    with pytest.raises(CommitConflict, match="would exceed max_beneficiaries 4"):
        commit_step(workflow=ENROLMENT, dag_id="late", run_id="a", taken=request, user="maker")
    assert beneficiaries(code) == {"POTENTIAL": 4}
    assert query("SELECT status FROM intake.requests WHERE request_id = %s", request["request_id"]) == [("FAILED",)]


def test_new_people_in_a_beneficiaries_file_join_the_registry(database, region: str, inbox_file) -> None:
    code = f"NP-{tag()}"
    run(DEFINE, plan=plan_document(code))
    (known,) = query("SELECT individual_id FROM registry.individuals WHERE region = %s AND role = 'SPOUSE'"
                     " ORDER BY 1 LIMIT 1", region)[0]
    household, surname = f"N{tag()}", f"Chebet{tag()}"
    header = "individual_id,first_name,last_name,dob,sex,group_code,recipient_info,individual_role,region,grade"
    path = inbox_file(f"{code}.csv", "\n".join([
        header,
        f"{known},,,,,,,,,2",
        f"{'':s},Faith,{surname},2012-04-04,F,{household},1,HEAD,{region},6",
        f",Brian,{surname},2014-05-05,M,{household},0,SON,{region},4",
    ]) + "\n")
    result = run_import(path, plan=code, mode="create")
    proposal = result["proposal"]
    assert (proposal["beneficiaries_to_enrol"], proposal["new_people_to_register"],
            proposal["new_households_to_register"]) == (3, 2, 1)
    registered = query("SELECT first_name, role, registered_by_upload FROM registry.individuals"
                       " WHERE household_code = %s ORDER BY 1", household)
    assert registered == [("Brian", "SON", result["upload_id"]), ("Faith", "HEAD", result["upload_id"])]
    assert query("SELECT count(*) FROM programmes.beneficiaries b JOIN registry.individuals i USING (individual_id)"
                 " WHERE b.plan_code = %s AND (i.household_code = %s OR i.individual_id = %s)",
                 code, household, known) == [(3,)]

    broken = inbox_file(f"{code}-broken.csv", "\n".join([
        header,
        f"{known},Again,{surname},1990-01-01,F,,,,,1",
        f",Nodob,{surname},,F,,,,{region},1",
        f",Grace,{surname},2013-02-30,F,,,,{region},1",
    ]) + "\n")
    with pytest.raises(WorkflowError, match="3 of 3 rows are invalid"):
        run_import(broken, plan=code, mode="create")
    rules = {(row, rule) for row, rule in query("SELECT row_number, rule FROM intake.row_errors WHERE upload_id ="
                                                " (SELECT max(upload_id) FROM intake.uploads)")}
    assert {(1, "person:named_twice"), (2, "person:new_person_incomplete"),
            (3, "dob__is_date:column_values_to_be_in_set")} <= rules
    assert query("SELECT count(*) FROM registry.individuals WHERE last_name = %s", surname) == [(2,)]
