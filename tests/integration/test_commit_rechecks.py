"""Invariants a concurrent commit can break are re-checked at commit, under locks (issue 15, review M6).

Each test proposes two operations before either commits (both validate: neither sees the other),
then commits them — concurrently where the race is the point, each in its own thread and
transaction — and checks that exactly one goes through and the other is refused by name.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benefitflow.core.errors import CommitConflict
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.programmes.beneficiaries_import import WORKFLOW as BENEFICIARIES
from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
from benefitflow.programmes.benefit_plan_close import WORKFLOW as CLOSE
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows import direct
from benefitflow.workflows.commit import commit_step
from benefitflow.workflows.declaration import Workflow
from benefitflow.workflows.direct import record_direct_decision
from benefitflow.workflows.intake import intake_step
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.validate import validate_step
from tests.integration.programme_data import in_region, plan_document, query, register_region, run, tag

MAKER = "maker"
PEOPLE = "first_name,last_name,dob,sex,group_code,recipient_info,individual_role,region"


# -- the steps one at a time (the approval is recorded as `workflow.run_steps` records it) -------------------------
@dataclass(frozen=True)
class Approved:
    """A proposal a checker approved, not committed yet."""

    proposal: dict[str, Any]
    commit: Callable[[], dict[str, Any]]


def approved_upload(flow: Workflow, path: Path, options: dict[str, Any], checker: str = "checker") -> Approved:
    return approved_request(flow, {**options, "file": path.name}, checker)


def approved_request(flow: Workflow, options: dict[str, Any], checker: str = "checker") -> Approved:
    dag_id, run_id = direct.direct_dag_id(flow), uuid.uuid4().hex
    taken = intake_step(workflow=flow, options=options, user=MAKER, dag_id=dag_id, run_id=run_id)
    validated = validate_step(workflow=flow, taken=taken, options=options, user=MAKER)
    proposal = propose_step(workflow=flow, taken=taken, validated=validated, options=options)
    ref = flow.proposal_for(taken)
    assert record_direct_decision(flow.operation, dag_id, run_id, MAKER, checker, proposal, upload_id=ref.upload_id,
                                  request_id=ref.request_id)
    return Approved(proposal, lambda: commit_step(workflow=flow, dag_id=dag_id, run_id=run_id, taken=taken,
                                                  user=MAKER))


def concurrently(*commits: Callable[[], dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Exception]]:
    """Run the commits at the same moment, each in its own thread (own connection and transaction)."""
    start = threading.Barrier(len(commits))

    def attempt(commit: Callable[[], dict[str, Any]]) -> dict[str, Any] | Exception:
        start.wait()
        try:
            return commit()
        except Exception as exc:  # the refusal is the result looked at
            return exc

    with ThreadPoolExecutor(len(commits)) as pool:
        results = list(pool.map(attempt, commits))
    return ([r for r in results if not isinstance(r, Exception)], [r for r in results if isinstance(r, Exception)])


def household_now(code: str) -> tuple[int, int, int]:
    """Members, HEADs and PRIMARY recipients of a household in the ledger (latest version of everyone)."""
    return query("SELECT count(*), count(*) FILTER (WHERE role = 'HEAD'),"
                 " count(*) FILTER (WHERE recipient_type = 'PRIMARY')"
                 " FROM (SELECT DISTINCT ON (individual_id) household_code, role, recipient_type"
                 "       FROM ledger.individual_versions ORDER BY individual_id, version DESC) v"
                 " WHERE household_code = %s", code)[0]


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region()


# -- households: one HEAD, one PRIMARY recipient -------------------------------------------------------------
@pytest.mark.parametrize("second_primary", ["HEAD", "SPOUSE"])
def test_two_uploads_adding_a_head_to_one_household_commit_one(database, inbox_file, second_primary: str) -> None:
    code = f"H{tag()}"
    first = inbox_file("first.csv", f"{PEOPLE}\nAmina,Okafor{tag()},1980-03-04,F,{code},1,HEAD,North\n"
                                    f"Zara,Okafor{tag()},2015-06-01,F,{code},0,DAUGHTER,North\n")
    head, spouse = ("1", "2") if second_primary == "HEAD" else ("2", "1")
    second = inbox_file("second.csv", f"{PEOPLE}\nMusa,Bello{tag()},1978-11-30,M,{code},{head},HEAD,North\n"
                                      f"Hauwa,Bello{tag()},1982-01-15,F,{code},{spouse},SPOUSE,North\n")
    # Validated before either commits: each sees a new household with one HEAD and one PRIMARY recipient.
    uploads = [approved_upload(INDIVIDUALS, path, {"mode": "create"}) for path in (first, second)]
    assert [u.proposal["households_to_create"] for u in uploads] == [1, 1]

    committed, refused = concurrently(*(u.commit for u in uploads))
    assert len(committed) == 1 and len(refused) == 1, refused
    assert isinstance(refused[0], CommitConflict)
    assert f"household {code} would have 2 HEADs and 2 primary recipients" in str(refused[0])
    members, heads, primaries = household_now(code)
    assert (members, heads, primaries) == (2, 1, 1)
    assert query("SELECT status FROM intake.uploads WHERE upload_id = ANY(%s) ORDER BY status",
                 [int(u.proposal["upload_id"]) for u in uploads]) == [("APPLIED",), ("FAILED",)]


def test_new_people_of_a_beneficiaries_file_are_rechecked_against_their_household(database, inbox_file) -> None:
    # A household of two; an update moves both into a new household, while a beneficiaries file adds a
    # son to the old one. Each alone keeps the rules; together the old household is left with the son
    # alone: no HEAD, no primary recipient. The beneficiaries commit, second, is refused.
    old, new, surname = f"H{tag()}", f"H{tag()}", f"Mensah{tag()}"
    direct.run_steps(INDIVIDUALS, file=inbox_file("pair.csv", f"{PEOPLE}\n"
                                                    f"Ama,{surname},1980-01-01,F,{old},1,HEAD,East\n"
                                                    f"Kwame,{surname},1979-01-01,M,{old},2,SPOUSE,East\n").name,
                       options={"mode": "create"}, maker=MAKER, checker="checker", run_id=uuid.uuid4().hex)
    ids = dict(query("SELECT first_name, individual_id FROM registry.individuals WHERE last_name = %s", surname))
    move = approved_upload(INDIVIDUALS, inbox_file("move.csv", f"id,group_code\n{ids['Ama']},{new}\n"
                                                               f"{ids['Kwame']},{new}\n"), {"mode": "update"})
    plan = f"RB-{tag()}"
    run(DEFINE, plan=plan_document(plan))
    son = approved_upload(BENEFICIARIES, inbox_file("son.csv", f"{PEOPLE}\nKofi,{surname},2014-01-01,M,{old},0,SON,"
                                                               f"East\n"), {"mode": "create", "plan": plan})
    assert son.proposal["new_people_to_register"] == 1
    move.commit()
    with pytest.raises(CommitConflict, match=f"household {old} would have 0 HEADs and 0 primary recipients"):
        son.commit()
    assert household_now(old) == (0, 0, 0) and household_now(new) == (2, 1, 1)
    assert query("SELECT count(*) FROM ledger.beneficiary_versions WHERE plan_code = %s", plan) == [(0,)]


# -- payment cycles: only ACTIVE beneficiaries of an ACTIVE plan are billed -----------------------------------
def test_a_cycle_approved_after_a_suspension_or_the_plan_closing_bills_nothing(database, region: str) -> None:
    code = f"RC-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="ACTIVE",
        criteria={"all": [in_region(region), {"field": "role", "op": "=", "value": "HEAD"}]})
    cycle = {"plan": code, "cycle": "2026-03", "period_start": "2026-03-01", "period_end": "2026-03-31"}
    billing = approved_request(CYCLE, cycle, checker="payment_checker")
    assert billing.proposal["bills"] == 4
    ((suspended,),) = query("SELECT min(beneficiary_id::text) FROM programmes.beneficiaries WHERE plan_code = %s",
                            code)
    run(STATUS, plan=code, status="SUSPENDED", reason="moved away",
        criteria={"all": [{"field": "beneficiary_id", "op": "=", "value": suspended}]})
    with pytest.raises(CommitConflict, match=rf"1 of the beneficiaries to bill are no longer ACTIVE.*{suspended} "
                                             rf"\(individual [0-9a-f-]+, now SUSPENDED\)"):
        billing.commit()
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(0,)]

    again = approved_request(CYCLE, cycle, checker="payment_checker")
    assert again.proposal["bills"] == 3
    run(CLOSE, plan=code, reason="programme ended")
    with pytest.raises(CommitConflict, match=f"plan {code} was closed since the proposal"):
        again.commit()
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(0,)]


def test_a_beneficiary_suspended_and_active_again_since_the_proposal_is_billed(database, region: str) -> None:
    code = f"RA-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="ACTIVE",
        criteria={"all": [in_region(region), {"field": "role", "op": "=", "value": "HEAD"}]})
    billing = approved_request(CYCLE, {"plan": code, "cycle": "2026-04", "period_start": "2026-04-01",
                                       "period_end": "2026-04-30"}, checker="payment_checker")
    ((beneficiary,),) = query("SELECT min(beneficiary_id::text) FROM programmes.beneficiaries WHERE plan_code = %s",
                              code)
    one = {"all": [{"field": "beneficiary_id", "op": "=", "value": beneficiary}]}
    run(STATUS, plan=code, status="SUSPENDED", reason="moved away", criteria=one)
    run(STATUS, plan=code, status="ACTIVE", reason="came back", criteria=one)
    billing.commit()  # its latest version is ACTIVE again: nothing to refuse
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(4,)]


# -- enrolment capacity and status changes ----------------------------------------------------------------------
def test_two_enrolments_proposed_into_the_last_places_commit_one(database, region: str) -> None:
    code = f"RE-{tag()}"
    run(DEFINE, plan=plan_document(code, max_beneficiaries=4))
    enrolments = [approved_request(ENROLMENT, {"plan": code, "target_status": "ACTIVE", "criteria": {"all": [
        in_region(region), {"field": "role", "op": "=", "value": role}]}}) for role in ("HEAD", "SPOUSE")]
    assert [e.proposal["would_be_added"] for e in enrolments] == [4, 4]
    committed, refused = concurrently(*(e.commit for e in enrolments))
    assert len(committed) == 1 and len(refused) == 1, refused
    assert isinstance(refused[0], CommitConflict)
    assert f"plan {code} now has 4 beneficiaries; 4 more would exceed max_beneficiaries 4" in str(refused[0])
    assert query("SELECT count(*) FROM ledger.beneficiary_versions WHERE plan_code = %s", code) == [(4,)]


def test_two_status_changes_of_one_beneficiary_commit_one(database, region: str) -> None:
    code = f"RS-{tag()}"
    run(DEFINE, plan=plan_document(code))
    run(ENROLMENT, plan=code, target_status="ACTIVE",
        criteria={"all": [in_region(region), {"field": "role", "op": "=", "value": "HEAD"}]})
    ((chosen,),) = query("SELECT min(beneficiary_id::text) FROM programmes.beneficiaries WHERE plan_code = %s", code)
    changes = [approved_request(STATUS, {"plan": code, "status": status, "reason": "field visit", "criteria": {
        "all": [{"field": "beneficiary_id", "op": "=", "value": chosen}]}}) for status in ("SUSPENDED", "GRADUATED")]
    committed, refused = concurrently(*(c.commit for c in changes))
    # The plan's lock: the second sees the first's version and names the beneficiary (no duplicate-key error).
    assert len(committed) == 1 and len(refused) == 1, refused
    assert isinstance(refused[0], CommitConflict)
    assert f"beneficiaries changed after the proposal: {chosen}" in str(refused[0])
    assert query("SELECT count(*) FROM ledger.beneficiary_versions WHERE beneficiary_id = %s", chosen) == [(2,)]
