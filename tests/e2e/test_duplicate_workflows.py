"""Duplicate people through the running Airflow services: a maker asks for a search and a merge, a checker of
RegistryCheckers approves each, and the registry shows one person."""

from __future__ import annotations

import uuid

import pytest

from benefitflow.core import config
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps
from tests.e2e.approvals import approved
from tests.e2e.people import query

pytestmark = pytest.mark.e2e


def test_a_person_registered_twice_is_found_and_merged_with_approval(airflow, database) -> None:
    maker, checker = airflow("maker"), airflow("checker")
    surname = "Dup" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])
    path = config.inbox() / f"twice-{uuid.uuid4().hex[:8]}.csv"
    path.write_text("first_name,last_name,dob,sex,location_code,region\n"
                    f"Amina,{surname},1979-04-04,F,L-1,North\nAminah,{surname},1979-04-04,F,L-1,North\n")
    run_steps(INDIVIDUALS, file=path.name, options={"mode": "create", "on_invalid_rows": "reject_file"},
              maker="maker", checker="checker", run_id=uuid.uuid4().hex)  # set up directly: not under test here
    people = dict(query("SELECT first_name, individual_id::text FROM registry.individuals WHERE last_name = %s",
                        surname))

    approved(maker, checker, "duplicates_search", {"scope": "changed"}, ["candidate pairs:**"])
    [(candidate, status)] = query("SELECT candidate_id, status FROM registry.duplicate_candidates"
                                  " WHERE individual_a = ANY(%s::uuid[]) AND individual_b = ANY(%s::uuid[])",
                                  list(people.values()), list(people.values()))
    assert status == "OPEN"

    approved(maker, checker, "duplicates_review",
             {"decision": "CONFIRM", "reason": "one woman", "candidates": [candidate]},
             ["pairs to decide:** 1", "bills cancelled as billed twice:** 0"])
    [(status, survivor)] = query("SELECT status, survivor_id::text FROM registry.duplicate_candidates"
                                 " WHERE candidate_id = %s", candidate)
    assert status == "CONFIRMED" and survivor in people.values()
    assert query("SELECT individual_id::text FROM registry.individuals WHERE last_name = %s", surname) == [(survivor,)]
    assert query("SELECT d.maker, d.checker, d.checker_group FROM ledger.duplicate_reviews r"
                 " JOIN ledger.commits c USING (commit_id) JOIN ledger.decisions d USING (decision_id)"
                 " WHERE r.candidate_id = %s", candidate) == [("maker", "checker", "RegistryCheckers")]
