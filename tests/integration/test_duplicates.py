"""Duplicate people on a real PostgreSQL with real dbt: the scoring rules on hand-made pairs, the search, the
review (dismiss, merge, unmerge) and its refusals.

The test database is shared by the whole session, so each test makes people of its own (a tag in their names) and
looks only at the pairs among them.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import psycopg2.errors
import pytest
import yaml

from benefitflow.core import config, db
from benefitflow.core.errors import WorkflowError
from benefitflow.registry import duplicate_rules
from benefitflow.registry.duplicates_review import WORKFLOW as REVIEW
from benefitflow.registry.duplicates_search import WORKFLOW as SEARCH
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps
from tests.integration.programme_data import plan_document

HEADER = "first_name,last_name,dob,sex,national_id,phone,group_code,recipient_info,individual_role,location_code,region"
MACRO = Path(config.DBT_PROJECT_DIR) / "macros" / "duplicate_blocks.sql"


def run(workflow: Any, checker: str | None = "checker", maker: str = "maker", **options: Any) -> dict:
    return run_steps(workflow, options=options, maker=maker, checker=checker, run_id=uuid.uuid4().hex)


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def tag() -> str:
    """Letters only: names are compared as letters, so a tag of digits would vanish."""
    return "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])


def register(rows: list[str], mode: str = "create", header: str = HEADER) -> dict:
    path = config.inbox() / f"duplicates-{uuid.uuid4().hex[:8]}.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return run_steps(INDIVIDUALS, file=path.name, options={"mode": mode, "on_invalid_rows": "reject_file"},
                     maker="maker", checker="checker", run_id=uuid.uuid4().hex)


def ids_of(surname: str) -> dict[str, str]:
    """first name -> individual id, of the people (merged ones too) with this last name (first names differ)."""
    return dict(query("SELECT DISTINCT ON (individual_id) first_name, individual_id::text"
                      " FROM ledger.individual_versions WHERE last_name = %s ORDER BY individual_id, version",
                      surname))


def pairs_among(people: dict[str, str], table: str = "registry.duplicate_candidates") -> dict[frozenset, Any]:
    """The pairs among these people: {first names of the two} -> (candidate id, status, score)."""
    names = {person: name for name, person in people.items()}
    rows = query(f"SELECT individual_a::text, individual_b::text, candidate_id, status, score FROM {table}"
                 " WHERE individual_a = ANY(%s::uuid[]) AND individual_b = ANY(%s::uuid[])",
                 list(names), list(names))
    return {frozenset((names[a], names[b])): (candidate, status, score) for a, b, candidate, status, score in rows}


def person(first: str, last: str, dob: str, **fields: Any) -> str:
    """A matching.person row literal for the hand-made pairs."""
    values = {"first_name": first, "last_name": last, "dob": dob, "sex": "F", "location_code": "L-1",
              "region": "North", "household_code": None, "phone": None, "national_id": None, **fields}
    return json.dumps(values)


def likeness(a: str, b: str) -> tuple[float, dict, bool]:
    rules = duplicate_rules.load().as_json()
    (score, fields, candidate), = query(
        "SELECT (l).score, (l).fields, matching.is_candidate(l, %s::jsonb) FROM (SELECT matching.likeness("
        " jsonb_populate_record(NULL::matching.person, %s::jsonb), jsonb_populate_record(NULL::matching.person,"
        " %s::jsonb), %s::jsonb) AS l) x", rules, a, b, rules)
    return float(score), fields, candidate


def test_the_blocks_are_named_alike_everywhere(database) -> None:
    """The database's block order, registry.duplicate_keys' columns (the dbt macro) and the rules' schema agree."""
    (names,), = query("SELECT matching.block_names()")
    columns = [column for (column,) in query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'registry'"
        " AND table_name = 'duplicate_keys' ORDER BY ordinal_position")]
    macro = re.findall(r"'(\w+)'", MACRO.read_text().split("return(", 1)[1])
    assert tuple(names) == duplicate_rules.BLOCKS == tuple(columns[3:]) == tuple(macro)


@pytest.mark.parametrize(("a", "b", "kept", "at_review"), [
    (person("Amina", "Okafor", "1980-03-04"), person("Amna", "Okafor", "1980-03-04"), True, True),  # a letter missing
    (person("Amina", "Okafor", "1980-03-04"), person("Amina", "Okfaor", "1980-03-04"), True, True),  # transposed
    (person("Amina", "Okafor", "1980-03-04"), person("Amina", "Okafor", "1980-04-03"), True, True),  # day and month
    (person("Amina", "Okafor", "1980-03-04"), person("Amina", "Okafor", "1986-03-04"), True, True),  # a digit
    (person("Amina", "Okafor", "1980-03-04"), person("Amina Grace", "Okafor", "1980-03-04"), True, True),  # middle name
    (person("María", "Gómez", "1980-03-04"), person("Maria", "Gomez", "1980-03-04", location_code="L-9",
                                                    region="South"), True, True),  # moved, accents dropped
    (person("Amina", "Okafor", "1980-03-04", phone="+254 700 000 001"),
     person("Amna", "Okafor", "1980-03-04", phone="254700000001"), True, True),  # the same phone, written otherwise
    (person("Amina", "Okafor", "1980-03-04"), person("Musa", "Okafor", "1980-03-04", sex="M"), False, False),  # twins
    (person("Amina", "Okafor", "1980-03-04", phone="+254700000001", household_code="H1"),
     person("Zara", "Bello", "2015-06-01", phone="+254700000001", household_code="H1"), False, False),  # shared phone
    (person("Amina", "Okafor", "1980-03-04", national_id="N1"),
     person("Amina", "Okafor", "1983-11-21", national_id="N2"), False, False),  # namesakes
])
def test_scoring_rules_on_hand_made_pairs(database, a: str, b: str, kept: bool, at_review: bool) -> None:
    score, fields, candidate = likeness(a, b)
    assert candidate is kept, (score, fields)
    assert (score >= duplicate_rules.load().review_threshold) is at_review, (score, fields)
    assert likeness(b, a)[:2] == (score, fields)  # the order of the two does not matter


def test_the_field_likeness_is_what_the_reviewer_reads(database) -> None:
    score, fields, _ = likeness(person("Amina", "Okafor", "1980-03-04", phone="+254700000001"),
                                person("Amina", "Okafor", "1980-04-03", phone="+254700000001",
                                       location_code="L-2"))
    assert fields == {"name": 1, "dob": 0.7, "sex": 1, "location": 0.4, "phone": 1}
    weights = duplicate_rules.load().document["weights"]
    expected = sum(fields[f] * weights[f] for f in fields) / sum(weights[f] for f in fields)
    assert score == pytest.approx(round(expected, 3))


def test_a_search_keeps_pairs_and_a_dismissed_pair_is_not_proposed_again_until_a_record_changes(database) -> None:
    surname = f"Okafor{tag()}"
    register([f"Amina,{surname},1980-03-04,F,,,,,,L-1,North",
              f"Amna,{surname},1980-03-04,F,,,,,,L-1,North",       # a letter missing
              f"Aminah,{surname},1980-04-03,F,,,,,,L-1,North",     # day and month swapped
              f"Musa,{surname},1975-09-10,M,,,,,,L-1,North"])      # nobody's duplicate
    people = ids_of(surname)
    found = run(SEARCH, scope="changed")
    assert found["proposal"]["people_to_examine"] >= 4
    pairs = pairs_among(people)
    assert {frozenset(("Amina", "Amna")), frozenset(("Amina", "Aminah"))} <= set(pairs)
    assert not any("Musa" in pair for pair in pairs)
    assert all(status == "OPEN" for _, status, _ in pairs.values())

    # What changed was searched: nothing is left to examine. Searching everyone proposes none of them again.
    assert run(SEARCH, scope="changed")["proposal"]["people_to_examine"] == 0
    assert not proposed_among(people, run(SEARCH, scope="registry"))

    typo = frozenset(("Amina", "Amna"))
    run(REVIEW, decision="DISMISS", reason="two sisters", candidates=[pairs[typo][0]])
    assert pairs_among(people)[typo][1] == "DISMISSED"
    assert not proposed_among(people, run(SEARCH, scope="registry"))

    # A changed record is looked at again: the dismissed pair comes back, as a new finding.
    register([f"{people['Amna']},+254700000009"], mode="update", header="id,phone")
    assert typo in proposed_among(people, run(SEARCH, scope="changed"))


def proposed_among(people: dict[str, str], search: dict) -> set[frozenset]:
    names = {person: name for name, person in people.items()}
    rows = query("SELECT individual_a::text, individual_b::text FROM proposals.duplicates_search_proposal"
                 " WHERE request_id = %s AND individual_a = ANY(%s::uuid[]) AND individual_b = ANY(%s::uuid[])",
                 search["request_id"], list(names), list(names))
    return {frozenset((names[a], names[b])) for a, b in rows}


def complain(individual_id: str, title: str = "Not paid") -> str:
    """A grievance ticket filed for this person: its code."""
    from benefitflow.grievances.grievances_import import WORKFLOW as GRIEVANCES
    path = config.inbox() / f"grievance-{uuid.uuid4().hex[:8]}.csv"
    path.write_text(f"individual_id,title,category,channel\n{individual_id},{title},payment,phone\n")
    upload = run_steps(GRIEVANCES, file=path.name, options={"on_invalid_rows": "reject_file"}, maker="maker",
                       checker="checker", run_id=uuid.uuid4().hex)
    return query("SELECT grievance_code FROM ledger.grievances WHERE upload_id = %s", upload["upload_id"])[0][0]


def ticket_of(code: str) -> tuple[str, str]:
    """Whom a ticket is about now, and whom it was filed for."""
    return query("SELECT individual_id::text, filed_for_individual_id::text FROM grievances.grievances"
                 " WHERE grievance_code = %s", code)[0]


def test_a_merge_moves_enrolments_keeps_a_plan_to_one_enrolment_and_an_unmerge_restores(database) -> None:
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT

    surname, region = f"Bello{tag()}", f"R{tag()}"
    household = f"H{tag().upper()}"
    register([f"Fatima,{surname},1985-07-07,F,,,{household},1,HEAD,L-1,{region}"])
    register([f"Fatma,{surname},1985-07-07,F,,,,,,L-1,{region}"])   # the same woman, registered again alone
    people = ids_of(surname)
    both, only_second = f"BOTH-{tag().upper()}", f"SECOND-{tag().upper()}"
    for code in (both, only_second):
        run(DEFINE, plan=plan_document(code))
    in_region = {"field": "region", "op": "=", "value": region}
    run(ENROLMENT, plan=both, target_status="ACTIVE", criteria={"all": [in_region]})
    run(ENROLMENT, plan=only_second, target_status="ACTIVE",
        criteria={"all": [in_region, {"field": "first_name", "op": "=", "value": "Fatma"}]})
    run(SEARCH, scope="changed")
    (candidate, status, _), = pairs_among(people).values()
    assert status == "OPEN"
    ticket = complain(people["Fatma"])

    # The maker never decides, whatever the configuration: the database refuses the decision itself.
    with pytest.raises(psycopg2.errors.CheckViolation, match="decision_approved_by_other_user"):
        run(REVIEW, checker="maker", decision="CONFIRM", reason="one woman", candidates=[candidate])
    merged = run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate])
    assert merged["proposal"]["pairs_to_decide"] == 1
    survivor, retired = people["Fatima"], people["Fatma"]  # the older record survives
    assert query("SELECT survivor_id::text, retired_id::text FROM registry.duplicate_candidates"
                 " WHERE candidate_id = %s", candidate) == [(survivor, retired)]
    assert query("SELECT count(*) FROM registry.individuals WHERE individual_id = %s", retired) == [(0,)]
    assert query("SELECT merged_into::text FROM ledger.individual_versions WHERE individual_id = %s"
                 " ORDER BY version DESC LIMIT 1", retired) == [(survivor,)]
    enrolments = dict(query("SELECT plan_code || ' ' || individual_id::text, status FROM programmes.beneficiaries"
                            " WHERE plan_code IN (%s, %s)", both, only_second))
    assert enrolments == {f"{both} {survivor}": "ACTIVE", f"{both} {retired}": "GRADUATED",
                          f"{only_second} {survivor}": "ACTIVE"}  # moved, and the plan has her once
    assert query("SELECT reason FROM programmes.beneficiary_status_history h JOIN programmes.beneficiaries b"
                 " USING (beneficiary_id) WHERE b.plan_code = %s AND b.individual_id = %s"
                 " ORDER BY h.version DESC LIMIT 1", both, retired)[0][0].startswith("duplicate")
    # Her complaint is the survivor's now (the ledger keeps it as filed); a new one names the survivor.
    assert ticket_of(ticket) == (survivor, retired)
    with pytest.raises(WorkflowError):
        complain(retired, "Still not paid")
    assert query("SELECT message FROM intake.row_errors WHERE upload_id = (SELECT max(upload_id) FROM intake.uploads"
                 " WHERE kind = 'grievances')") == [
        (f"this record was merged into individual {survivor} (a duplicate): name that one",)]

    # Her record shows the pair and the merge.
    assert query("SELECT reference, status, detail LIKE %s FROM marts.mart_individual_record"
                 " WHERE individual_id = %s AND section = 'duplicate'", f"%merged {retired} into {survivor}%",
                 survivor) == [(f"pair {candidate}", "CONFIRMED", True)]

    unmerged = run(REVIEW, decision="UNMERGE", reason="two women after all", candidates=[candidate])
    assert unmerged["proposal"]["pairs_to_decide"] == 1
    assert query("SELECT first_name, household_code FROM registry.individuals WHERE individual_id = %s",
                 retired) == [("Fatma", None)]
    enrolments = dict(query("SELECT plan_code || ' ' || individual_id::text, status FROM programmes.beneficiaries"
                            " WHERE plan_code IN (%s, %s)", both, only_second))
    assert enrolments[f"{only_second} {retired}"] == "ACTIVE"  # moved back
    assert enrolments[f"{both} {retired}"] == "ACTIVE"  # no longer graduated as a duplicate
    assert ticket_of(ticket) == (retired, retired)
    assert query("SELECT status FROM registry.duplicate_candidates WHERE candidate_id = %s",
                 candidate) == [("UNMERGED",)]


def test_an_enrolment_proposed_before_a_merge_does_not_enrol_the_survivor_twice(database) -> None:
    from benefitflow.core.errors import CommitConflict
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT

    surname, region = f"Juma{tag()}", f"R{tag()}"
    register([f"Halima,{surname},1966-06-06,F,,,,,,L-6,{region}"])
    register([f"Halimah,{surname},1966-06-06,F,,,,,,L-6,{region}"])  # newer: she survives
    run(SEARCH, scope="changed")
    (candidate, _, _), = pairs_among(ids_of(surname)).values()
    code = f"TWICE-{tag().upper()}"
    run(DEFINE, plan=plan_document(code))
    named = {"field": "region", "op": "=", "value": region}

    def enrol(first_name: str, **hooks: Any) -> dict:
        criteria = {"all": [named, {"field": "first_name", "op": "=", "value": first_name}]}
        return run_steps(ENROLMENT, options={"plan": code, "target_status": "ACTIVE", "criteria": criteria},
                         maker="maker", checker="checker", run_id=uuid.uuid4().hex, **hooks)

    enrol("Halima")

    def merged_before_the_commit(step: str, action: Any) -> Any:
        if step == "commit":  # approved days later: the two were merged meanwhile, her enrolment moved to Halimah
            run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate], survivor="newer")
        return action()

    with pytest.raises(CommitConflict, match="merged as duplicates since the proposal"):
        enrol("Halimah", on_step=merged_before_the_commit)
    assert query("SELECT count(*) FROM ledger.beneficiary_versions WHERE plan_code = %s AND version = 1", code) == [(1,)]


def test_a_survivor_without_a_household_takes_the_retired_records_place_and_an_unmerge_gives_it_back(database) -> None:
    surname, household = f"Adamu{tag()}", f"H{tag().upper()}"
    register([f"Yusuf,{surname},1960-01-01,M,,,,,,L-2,North"])  # registered first: he survives
    register([f"Yusef,{surname},1960-01-01,M,,,{household},1,HEAD,L-2,North",
              f"Hauwa,{surname},1990-05-05,F,,,{household},0,DAUGHTER,L-2,North"])
    people = ids_of(surname)
    run(SEARCH, scope="changed")
    candidate = pairs_among(people)[frozenset(("Yusuf", "Yusef"))][0]
    run(REVIEW, decision="CONFIRM", reason="one man", candidates=[candidate])
    assert query("SELECT individual_id::text, role, recipient_type FROM registry.individuals"
                 " WHERE household_code = %s ORDER BY role", household) == [
        (people["Hauwa"], "DAUGHTER", None), (people["Yusuf"], "HEAD", "PRIMARY")]

    # A merged record is not updated (its survivor is); the survivor's own corrections survive an unmerge.
    with pytest.raises(WorkflowError):
        register([f"{people['Yusef']},+234800000001"], mode="update", header="id,phone")
    assert query("SELECT message FROM intake.row_errors WHERE upload_id = (SELECT max(upload_id) FROM intake.uploads)"
                 " AND rule = 'id:unknown_individual'") == [
        (f"this record was merged into individual {people['Yusuf']} (a duplicate): update that one",)]
    register([f"{people['Yusuf']},+234800000002"], mode="update", header="id,phone")

    run(REVIEW, decision="UNMERGE", reason="two men after all", candidates=[candidate])
    assert query("SELECT first_name, role, attributes ->> 'phone' FROM registry.individuals"
                 " WHERE individual_id = ANY(%s::uuid[]) ORDER BY 1", [people["Yusuf"], people["Yusef"]]) == [
        ("Yusef", "HEAD", None), ("Yusuf", None, "+234800000002")]
    # The pair's recorded versions are those the unmerge committed: it is not proposed again.
    assert not proposed_among(people, run(SEARCH, scope="registry"))


def test_a_merged_records_national_id_is_its_survivors_to_take(database) -> None:
    surname, national_id = f"Diallo{tag()}", f"NID{uuid.uuid4().hex[:10].upper()}"
    register([f"Mariam,{surname},1975-03-03,F,,,,,,L-4,North"])  # registered first: she survives
    register([f"Mariame,{surname},1975-03-03,F,{national_id},,,,,L-4,North"])
    people = ids_of(surname)
    run(SEARCH, scope="changed")
    (candidate, _, _), = pairs_among(people).values()
    run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate])

    with pytest.raises(WorkflowError):  # someone else: refused, and told whose it is
        register([f"Oumou,{surname},1990-09-09,F,{national_id},,,,,L-4,North"])
    assert query("SELECT message FROM intake.row_errors WHERE upload_id = (SELECT max(upload_id) FROM intake.uploads)"
                 " AND rule = 'national_id:already_in_registry'") == [
        (f"this national id belongs to individual {people['Mariame']}, merged into individual {people['Mariam']}"
         " (a duplicate): only that one may take it",)]
    register([f"{people['Mariam']},{national_id}"], mode="update", header="id,national_id")  # the survivor may
    assert query("SELECT national_id FROM registry.individuals WHERE individual_id = %s",
                 people["Mariam"]) == [(national_id,)]
    # Then an unmerge would give two people one national id: refused until one is corrected.
    refused = run(REVIEW, decision="UNMERGE", reason="two women", candidates=[candidate])["proposal"]
    assert list(refused["not_allowed"]) == [
        "the survivor took the retired record's national id since the merge: correct one of them first"]


def test_a_retired_head_of_a_household_that_keeps_members_is_refused(database) -> None:
    surname, first, second = f"Mensah{tag()}", f"H{tag().upper()}", f"H{tag().upper()}"
    register([f"Kofi,{surname},1970-02-02,M,,,{first},1,HEAD,L-3,North"])  # registered first: he survives
    register([f"Koffi,{surname},1970-02-02,M,,,{second},1,HEAD,L-3,North",
              f"Abena,{surname},2000-03-03,F,,,{second},0,DAUGHTER,L-3,North"])
    people = ids_of(surname)
    run(SEARCH, scope="changed")
    (candidate, _, _), = pairs_among(people).values()
    result = run(REVIEW, decision="CONFIRM", reason="one man", candidates=[candidate])
    assert result["proposal"]["pairs_to_decide"] == 0
    assert list(result["proposal"]["not_allowed"]) == [
        f"the retired record is the HEAD or primary recipient of household {second}, which keeps other members:"
        " name another first"]
    assert query("SELECT status FROM registry.duplicate_candidates WHERE candidate_id = %s", candidate) == [("OPEN",)]


def test_a_pair_whose_record_was_merged_elsewhere_is_dismissed_not_merged(database) -> None:
    surname = f"Ochieng{tag()}"
    register([f"Akinyi,{surname},1988-08-18,F,,,,,,L-8,North"])
    register([f"Akiny,{surname},1988-08-18,F,,,,,,L-8,North", f"Akinyl,{surname},1988-08-18,F,,,,,,L-8,North"])
    people = ids_of(surname)
    run(SEARCH, scope="changed")
    pairs = pairs_among(people)
    first = pairs[frozenset(("Akinyi", "Akiny"))][0]
    run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[first])
    other = pairs[frozenset(("Akiny", "Akinyl"))][0]  # Akiny is now merged into Akinyi
    refused = run(REVIEW, decision="CONFIRM", reason="the same again", candidates=[other])["proposal"]
    assert refused["pairs_to_decide"] == 0 and list(refused["not_allowed"])[0].startswith("a record of this pair was")
    run(REVIEW, decision="DISMISS", reason="settled by the merge", candidates=[other])
    assert pairs_among(people)[frozenset(("Akiny", "Akinyl"))][1] == "DISMISSED"


def test_a_search_waits_for_the_one_before_it(database) -> None:
    waiting = run(SEARCH, checker=None, scope="changed")  # rejected: nothing waits
    assert query("SELECT status FROM intake.requests WHERE request_id = %s", waiting["request_id"]) == [("REJECTED",)]
    from benefitflow.workflows.direct import direct_dag_id, record_direct_decision
    from benefitflow.workflows.intake import intake_step
    from benefitflow.workflows.propose import propose_step
    from benefitflow.workflows.validate import validate_step
    options, run_id = {"scope": "changed"}, uuid.uuid4().hex
    taken = intake_step(workflow=SEARCH, options=options, user="maker", dag_id=direct_dag_id(SEARCH), run_id=run_id)
    validated = validate_step(workflow=SEARCH, taken=taken, options=options, user="maker")
    propose_step(workflow=SEARCH, taken=taken, validated=validated, options=options)  # now waiting for a checker
    try:
        with pytest.raises(WorkflowError, match=f"search request {taken['request_id']} .* is waiting for a checker"):
            run(SEARCH, scope="registry")
    finally:  # the waiting one is rejected, as a checker would
        record_direct_decision(SEARCH.operation, direct_dag_id(SEARCH), run_id, "maker", None, validated,
                               request_id=int(taken["request_id"]), default=SEARCH.approve)


def test_unknown_candidate_ids_and_bad_review_files_are_refused_with_row_errors(database) -> None:
    surname = f"Diallo{tag()}"
    register([f"Awa,{surname},1991-01-01,F,,,,,,L-4,North", f"Awaa,{surname},1991-01-01,F,,,,,,L-4,North"])
    people = ids_of(surname)
    run(SEARCH, scope="changed")
    (candidate, _, _), = pairs_among(people).values()

    with pytest.raises(WorkflowError, match=r"not OPEN pairs: 999999999999 \(no such pair\)"):
        run(REVIEW, decision="DISMISS", reason="x", candidates=[candidate, 999999999999])
    with pytest.raises(WorkflowError, match="not CONFIRMED pairs"):
        run(REVIEW, decision="UNMERGE", reason="x", candidates=[candidate])

    path = config.inbox() / f"review-{uuid.uuid4().hex[:8]}.csv"
    path.write_text(f"candidate_id,survivor_id\n{candidate},{uuid.uuid4()}\nseven,\n999999999999,\n{candidate},\n")
    with pytest.raises(WorkflowError, match="rows that name no OPEN pair"):
        run(REVIEW, decision="CONFIRM", reason="x", file=path.name)
    (upload_id,), = query("SELECT max(upload_id) FROM intake.uploads WHERE file_name = %s", path.name)[0:1]
    assert set(query("SELECT row_number, column_name, rule FROM intake.row_errors WHERE upload_id = %s",
                     upload_id)) == {(1, "survivor_id", "survivor_id:not_in_pair"),
                                     (2, "candidate_id", "candidate_id:not_open"),
                                     (3, "candidate_id", "candidate_id:not_open")}
    assert query("SELECT status FROM registry.duplicate_candidates WHERE candidate_id = %s", candidate) == [("OPEN",)]

    good = config.inbox() / f"review-{uuid.uuid4().hex[:8]}.csv"
    good.write_text(f"candidate_id,survivor_id\n{candidate},{people['Awaa']}\n")
    run(REVIEW, decision="CONFIRM", reason="the file names the survivor", file=good.name)
    assert query("SELECT survivor_id::text FROM registry.duplicate_candidates WHERE candidate_id = %s",
                 candidate) == [(people["Awaa"],)]


def test_an_upload_is_checked_for_likely_duplicates_under_the_same_rules(database) -> None:
    surname = f"Traore{tag()}"
    register([f"Moussa,{surname},1977-12-01,M,,+22370000001,,,,L-5,North"])
    result = register([f"Mousa,{surname},1977-01-12,M,,,,,,L-6,South",      # day and month swapped, moved
                       f"Ibrahim,{surname},1950-01-01,M,,+22370000001,,,,L-5,North"])  # shares his phone only
    assert result["proposal"]["likely_duplicates"] == 1
    assert result["proposal"]["likely_duplicates_first"] == ["row 1: looks like a person already in the registry"]


@pytest.mark.parametrize("hold", [True, False])
def test_a_payment_cycle_counts_the_bills_of_people_in_open_pairs_and_holds_them_if_the_plan_says(
        database, hold: bool) -> None:
    from benefitflow.payments.held_bills_release import WORKFLOW as RELEASE
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from tests.integration.payments_data import define_and_activate, pay

    surname, region = f"Kamau{tag()}", f"R{tag()}"
    # Otieno is born in another year in each run: the run before is in the same registry (its tag aside, the same name)
    register([f"Wanjiru,{surname},1980-05-05,F,,,,,,L-7,{region}",
              f"Wanjiro,{surname},1980-05-05,F,,,,,,L-7,{region}",   # her, registered twice
              f"Otieno,{surname},{1971 if hold else 1963}-08-08,M,,,,,,L-7,{region}"])
    run(SEARCH, scope="changed")
    people = ids_of(surname)
    (candidate, _, _), = pairs_among(people).values()
    code = f"DUP-{tag().upper()}"
    define_and_activate(region, code, {"fixed_amount": "1000.00"}, hold_bills_of_open_duplicates=hold)
    proposal = pay(CYCLE, plan=code, cycle="2026-01", period_start="2026-01-01", period_end="2026-01-31")["proposal"]
    assert (proposal["bills"], proposal["likely_duplicate_payees_billed"], proposal["likely_duplicate_payees_total"],
            proposal["likely_duplicate_payees_held"]) == (3, 2, "2,000.00 KES", 2 if hold else 0)
    held = query("SELECT i.first_name, b.status FROM payments.bills b JOIN registry.individuals i USING (individual_id)"
                 " WHERE b.plan_code = %s ORDER BY 1", code)
    assert held == [("Otieno", "DUE"), ("Wanjiro", "HELD" if hold else "DUE"), ("Wanjiru", "HELD" if hold else "DUE")]
    if hold:  # held until the pair is reviewed: a release leaves them held
        with pytest.raises(WorkflowError, match="2 kept held for duplicate people"):
            pay(RELEASE, plan=code, cycle="2026-01", reason="pay them", bills=[])
    else:  # out for payment: a merge waits until the provider says whether it paid her twice
        payroll = payroll_of(code)
        refused = run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate])["proposal"]
        assert list(refused["not_allowed"]) == [
            "billed twice in a cycle whose bills are both out for payment (or one paid): reconcile the payroll first"]
        reconcile_as_failed(payroll)

    # Once merged, she is billed twice in the cycle: the retired record's unpaid bill (held, or failed) is cancelled.
    merged = run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate])["proposal"]
    assert (merged["bills_cancelled_as_billed_twice"], merged["amount_cancelled"]) == (1, "1000.00")
    survivor, retired = query("SELECT survivor_id::text, retired_id::text FROM registry.duplicate_candidates"
                              " WHERE candidate_id = %s", candidate)[0]
    statuses = dict(query("SELECT billed_individual_id::text, status FROM payments.bills WHERE plan_code = %s", code))
    unpaid = "HELD" if hold else "FAILED"
    assert statuses == {survivor: unpaid, retired: "CANCELLED", people["Otieno"]: "DUE" if hold else "FAILED"}
    assert query("SELECT bills, bills_cancelled, amount_cancelled FROM marts.mart_payment_cycles"
                 " WHERE plan_code = %s", code) == [(3, 1, 1000)]
    if hold:
        released = pay(RELEASE, plan=code, cycle="2026-01", reason="pay her once", bills=[])["proposal"]
        assert (released["bills_selected"], released["held_for_duplicate_people"]) == (1, 0)
        paid = query("SELECT individual_id::text FROM payments.bills WHERE payroll_name = %s", payroll_of(code))
        assert sorted(paid) == sorted([(survivor,), (people["Otieno"],)])
    else:
        from benefitflow.payments.payroll import WORKFLOW as PAYROLL
        again = pay(PAYROLL, cycle="2026-01", plan=code, include_unpaid_from=payroll)["proposal"]
        assert again["moved_from_earlier_payroll"] == 2  # hers and Otieno's, not the cancelled one

    # Whatever a workflow does, the database keeps a cancelled bill from being paid, moved or put in a payroll.
    (bill, commit), = query("SELECT bill_id::text, commit_id FROM ledger.bill_events WHERE status = 'CANCELLED'"
                            " AND bill_id = (SELECT bill_id FROM ledger.bills WHERE individual_id = %s"
                            " AND plan_code = %s)", retired, code)
    with pytest.raises(psycopg2.errors.CheckViolation, match="a cancelled bill is never paid"):
        query("INSERT INTO ledger.bill_events (bill_id, status, reason, commit_id) VALUES (%s, 'DUE', 'again', %s)"
              " RETURNING 1", bill, commit)
    with pytest.raises(psycopg2.errors.CheckViolation, match="a cancelled bill is never put in a payroll"):
        query("INSERT INTO ledger.payroll_bills (payroll_id, bill_id, amount, commit_id)"
              " SELECT max(payroll_id), %s, 1000, %s FROM ledger.payrolls RETURNING 1", bill, commit)
    with pytest.raises(psycopg2.errors.CheckViolation, match="only by the unmerge of the merge that cancelled it"):
        query("INSERT INTO ledger.bill_events (bill_id, status, reason, commit_id)"
              " VALUES (%s, 'REINSTATED', 'again', %s) RETURNING 1", bill, commit)  # the merge's commit: no unmerge

    # An unmerge reinstates it as it was: held as billed, or failed in its payroll (which the next one moves on).
    unmerged = run(REVIEW, decision="UNMERGE", reason="two women after all", candidates=[candidate])["proposal"]
    assert unmerged["cancelled_bills_reinstated"] == 1
    assert query("SELECT status FROM payments.bills WHERE billed_individual_id = %s AND plan_code = %s",
                 retired, code) == [(unpaid,)]
    assert query("SELECT bills_cancelled FROM marts.mart_payment_cycles WHERE plan_code = %s", code) == [(0,)]
    if not hold:
        from benefitflow.payments.payroll import WORKFLOW as PAYROLL
        assert pay(PAYROLL, cycle="2026-01", plan=code,
                   include_unpaid_from=payroll)["proposal"]["moved_from_earlier_payroll"] == 1


JANUARY = {"cycle": "2026-01", "period_start": "2026-01-01", "period_end": "2026-01-31"}


def one_woman_billed(family: str, names: tuple[str, ...],
                     away: tuple[str, ...]) -> tuple[dict[str, str], dict[frozenset, Any], str]:
    """One woman of this family registered under each of these names, in this order, and found by a search (another
    test's family name differs: no pair across tests); a plan of her region
    enrols every record, suspends those `away` and bills January (200.00 each): (first name -> individual id, the
    pairs among them, the plan's code)."""
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from tests.integration.payments_data import define_and_activate, pay

    surname, region = f"{family}{tag()}", f"R{tag()}"
    for first_name in names:
        register([f"{first_name},{surname},1990-09-09,F,,,,,,L-9,{region}"])
    run(SEARCH, scope="changed")
    people = ids_of(surname)
    code = f"ONE-{tag().upper()}"
    define_and_activate(region, code, {"fixed_amount": "200.00"})
    for first_name in away:
        run(STATUS, plan=code, status="SUSPENDED", reason="away",
            criteria={"all": [{"field": "first_name", "op": "=", "value": first_name}]})
    assert pay(CYCLE, plan=code, **JANUARY)["proposal"]["bills"] == len(names) - len(away)
    return people, pairs_among(people), code


def test_a_cycle_billed_again_after_a_merge_does_not_pay_the_survivor_twice(database) -> None:
    """Billed in a cycle through one record, a person merged into another record that is billed in the cycle's next
    run would be paid twice: the proposal leaves the survivor out, and a merge between the proposal and the commit
    makes the commit refuse. An unmerge makes them two people again: the next run bills the other."""
    from benefitflow.core.errors import CommitConflict
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from tests.integration.payments_data import pay

    people, pairs, code = one_woman_billed("Ochieng", ("Amina", "Aminah"), away=("Aminah",))  # Amina's bill
    (candidate, _, _), = pairs.values()
    run(STATUS, plan=code, status="ACTIVE", reason="back",
        criteria={"all": [{"field": "first_name", "op": "=", "value": "Aminah"}]})
    cycle = {"plan": code, **JANUARY}

    def merged_before_the_commit(step: str, action: Any) -> Any:
        if step == "commit":  # Amina's enrolment is graduated as a duplicate; her bill pays Aminah now
            run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate], survivor="newer")
        return action()

    with pytest.raises(CommitConflict, match="1 of the people to bill are paid by another bill of cycle 2026-01"):
        run_steps(CYCLE, options=cycle, maker="maker", checker="payment_checker", run_id=uuid.uuid4().hex,
                  on_step=merged_before_the_commit)
    billed = "SELECT billed_individual_id::text, individual_id::text, status FROM payments.bills WHERE plan_code = %s"
    assert query(billed, code) == [(people["Amina"], people["Aminah"], "DUE")]

    again = pay(CYCLE, **cycle)["proposal"]
    assert (again["bills"], again["already_billed_in_this_cycle"]) == (0, 1)
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(1,)]

    run(REVIEW, decision="UNMERGE", reason="two women after all", candidates=[candidate])
    assert pay(CYCLE, **cycle)["proposal"]["bills"] == 1  # Aminah's, now that her bill is Amina's again
    assert sorted(query(billed, code)) == sorted([(people["Amina"], people["Amina"], "DUE"),
                                                  (people["Aminah"], people["Aminah"], "DUE")])


def test_a_chain_of_merges_finds_the_bill_a_record_merged_earlier_is_paid_by(database) -> None:
    """Amina merged into Aminah (whose enrolment, suspended, was not billed): Amina's bill pays Aminah. Merging Aminah
    into Amine, billed too, finds her billed twice though no version of Amina's graduated enrolment names either, and
    cancels one; the unmerge reinstates it."""
    people, pairs, code = one_woman_billed("Wafula", ("Amina", "Aminah", "Amine"), away=("Aminah",))

    first = run(REVIEW, decision="CONFIRM", reason="one woman", survivor="newer",
                candidates=[pairs[frozenset(("Amina", "Aminah"))][0]])["proposal"]
    assert first["bills_cancelled_as_billed_twice"] == 0  # Aminah was not billed
    last_pair = pairs[frozenset(("Aminah", "Amine"))][0]
    second = run(REVIEW, decision="CONFIRM", reason="one woman", survivor="newer", candidates=[last_pair])["proposal"]
    assert (second["bills_cancelled_as_billed_twice"], second["amount_cancelled"]) == (1, "200.00")
    billed = ("SELECT billed_individual_id::text, individual_id::text, status FROM payments.bills"
              " WHERE plan_code = %s ORDER BY 1")
    amine = people["Amine"]
    assert sorted(query(billed, code)) == sorted([(people["Amina"], amine, "CANCELLED"), (amine, amine, "DUE")])

    unmerged = run(REVIEW, decision="UNMERGE", reason="two women", candidates=[last_pair])["proposal"]
    assert unmerged["cancelled_bills_reinstated"] == 1
    assert sorted(query(billed, code)) == sorted([(people["Amina"], people["Aminah"], "DUE"), (amine, amine, "DUE")])


def test_an_unmerge_reinstates_only_what_its_merge_cancelled_for_its_pair(database) -> None:
    """One commit merges Asha into Aisha and Ayesha into Aysha, cancelling Ayesha's bill (both were billed); a later
    commit merges Aysha into Aisha, so Ayesha's bill pays Aisha now. Unmerging Asha and Aisha gives back nothing of
    the other pair's: Ayesha's bill, reinstated, would pay Aisha a second time."""
    people, pairs, code = one_woman_billed("Njoroge", ("Aisha", "Asha", "Aysha", "Ayesha"), away=("Aisha", "Asha"))

    first_pair = pairs[frozenset(("Aisha", "Asha"))][0]
    both = run(REVIEW, decision="CONFIRM", reason="one woman",
               candidates=[first_pair, pairs[frozenset(("Aysha", "Ayesha"))][0]])["proposal"]
    assert (both["pairs_to_decide"], both["bills_cancelled_as_billed_twice"]) == (2, 1)  # Ayesha's
    later = run(REVIEW, decision="CONFIRM", reason="one woman",
                candidates=[pairs[frozenset(("Aisha", "Aysha"))][0]])["proposal"]
    assert later["bills_cancelled_as_billed_twice"] == 0  # Aisha was not billed

    unmerged = run(REVIEW, decision="UNMERGE", reason="two women", candidates=[first_pair])["proposal"]
    assert unmerged["cancelled_bills_reinstated"] == 0
    billed = "SELECT billed_individual_id::text, individual_id::text, status FROM payments.bills WHERE plan_code = %s"
    aisha = people["Aisha"]
    assert sorted(query(billed, code)) == sorted([(people["Aysha"], aisha, "DUE"),
                                                  (people["Ayesha"], aisha, "CANCELLED")])


def test_a_payment_made_to_the_survivor_while_merged_stays_the_survivors_after_an_unmerge(database) -> None:
    """Amina, billed, is merged into Aminah (suspended, not billed): a payroll pays Amina's bill to Aminah. Unmerged,
    they are two people again, and the unmerge's checker is told Aminah had Amina's payment; billed again once active,
    Aminah is not billed in that cycle: she was paid for it (the ledger keeps whom each payroll line paid)."""
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from tests.integration.payments_data import pay, read_rows

    people, pairs, code = one_woman_billed("Kamau", ("Amina", "Aminah"), away=("Aminah",))
    (candidate, _, _), = pairs.values()
    amina, aminah = people["Amina"], people["Aminah"]
    run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate], survivor="newer")
    payroll = payroll_of(code)
    assert [row["Individual Id"] for row in read_rows(payroll)] == [aminah]
    assert query("SELECT recipient_id::text FROM ledger.payroll_bills pb JOIN ledger.payrolls p USING (payroll_id)"
                 " WHERE p.payroll_name = %s", payroll) == [(aminah,)]

    unmerged = run(REVIEW, decision="UNMERGE", reason="two women after all", candidates=[candidate])["proposal"]
    assert (unmerged["bills_paid_to_the_survivor_while_merged"],
            unmerged["amount_paid_to_the_survivor_while_merged"]) == (1, "200.00")
    billed = "SELECT billed_individual_id::text, individual_id::text, status FROM payments.bills WHERE plan_code = %s"
    assert query(billed, code) == [(amina, aminah, "DUE")]  # out for payment, to Aminah

    run(STATUS, plan=code, status="ACTIVE", reason="back",
        criteria={"all": [{"field": "first_name", "op": "=", "value": "Aminah"}]})
    again = pay(CYCLE, plan=code, **JANUARY)["proposal"]
    assert (again["bills"], again["already_billed_in_this_cycle"]) == (0, 2)
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(1,)]


def test_a_merge_finds_a_bill_paid_to_one_of_the_pair_while_merged_with_a_third(database) -> None:
    """Amina's bill goes out to Aminah while Amina is merged into her: a payment that failed is no payment to her, the
    next payroll's is. Unmerged, Aminah merging with Amine, whose own bill is out for payment in the same cycle, finds
    Aminah paid twice: the merge waits for the reconciliation."""
    from benefitflow.payments.payroll import WORKFLOW as PAYROLL
    from tests.integration.payments_data import pay

    people, pairs, code = one_woman_billed("Wekesa", ("Amina", "Aminah", "Amine"), away=("Aminah",))
    first = pairs[frozenset(("Amina", "Aminah"))][0]
    run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[first], survivor="newer")
    paid_to_aminah = "SELECT count(*) FROM ledger.bills_paid_to_survivor(%s, %s)"
    failed = payroll_of(code)
    reconcile_as_failed(failed)
    assert query(paid_to_aminah, people["Amina"], people["Aminah"]) == [(0,)]
    pay(PAYROLL, cycle="2026-01", plan=code, include_unpaid_from=failed)
    assert query(paid_to_aminah, people["Amina"], people["Aminah"]) == [(1,)]
    unmerged = run(REVIEW, decision="UNMERGE", reason="two women", candidates=[first])["proposal"]
    assert unmerged["bills_paid_to_the_survivor_while_merged"] == 1

    refused = run(REVIEW, decision="CONFIRM", reason="one woman", survivor="newer",
                  candidates=[pairs[frozenset(("Aminah", "Amine"))][0]])["proposal"]
    assert list(refused["not_allowed"]) == [
        "billed twice in a cycle whose bills are both out for payment (or one paid): reconcile the payroll first"]


def test_a_payroll_pays_the_recipients_its_checker_approved(database) -> None:
    """A merge between a payroll's proposal and its commit gives Amina's bill another payee: the commit refuses,
    nothing appended; asked again, the payroll pays the survivor."""
    from benefitflow.core.errors import CommitConflict
    from benefitflow.payments.payroll import WORKFLOW as PAYROLL
    from tests.integration.payments_data import read_rows

    people, pairs, code = one_woman_billed("Mutua", ("Amina", "Aminah"), away=("Aminah",))
    (candidate, _, _), = pairs.values()

    def merged_before_the_commit(step: str, action: Any) -> Any:
        if step == "commit":
            run(REVIEW, decision="CONFIRM", reason="one woman", candidates=[candidate], survivor="newer")
        return action()

    with pytest.raises(CommitConflict, match="1 of these bills pay someone else since the proposal"):
        run_steps(PAYROLL, options={"cycle": "2026-01", "plan": code}, maker="maker", checker="payment_checker",
                  run_id=uuid.uuid4().hex, on_step=merged_before_the_commit)
    assert query("SELECT count(*) FROM ledger.payrolls WHERE plan_code = %s", code) == [(0,)]
    assert [row["Individual Id"] for row in read_rows(payroll_of(code))] == [people["Aminah"]]


def test_a_household_plan_does_not_pay_one_person_for_two_households_in_a_cycle(database) -> None:
    """Amina, alone in her household, is its primary recipient: a payroll pays her the household's bill, and the
    household leaves the plan. Registered again as Aminah, primary recipient of another household, which the plan
    enrols: a merge of the two, committed between the cycle's next proposal and its commit and not yet published,
    makes the commit refuse; once published, the proposal leaves that household out: she was paid for the cycle."""
    from benefitflow.core.errors import CommitConflict
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
    from benefitflow.workflows import publish
    from tests.integration.payments_data import pay, read_rows

    surname, region, code = f"Chebet{tag()}", f"R{tag()}", f"HH-{tag().upper()}"
    first, second = f"H{tag().upper()}", f"H{tag().upper()}"
    in_region = {"all": [{"field": "region", "op": "=", "value": region}]}
    register([f"Amina,{surname},1990-09-09,F,,,{first},1,HEAD,L-9,{region}"])
    run(DEFINE, plan=plan_document(code, type="GROUP", beneficiary_data_schema={}, default_criteria={},
                                   entitlement={"fixed_amount": "300.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria=in_region)
    assert pay(CYCLE, plan=code, **JANUARY)["proposal"]["bills"] == 1
    amina = ids_of(surname)["Amina"]
    assert [row["Individual Id"] for row in read_rows(payroll_of(code))] == [amina]
    run(STATUS, plan=code, status="GRADUATED", reason="moved away",
        criteria={"all": [{"field": "status", "op": "=", "value": "ACTIVE"}]})

    register([f"Aminah,{surname},1990-09-09,F,,,{second},1,HEAD,L-9,{region}"])
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria=in_region)
    run(SEARCH, scope="changed")
    (candidate, _, _), = pairs_among(ids_of(surname)).values()

    with pytest.raises(CommitConflict, match="1 of the people to bill are paid by another bill of cycle 2026-01"):
        run_steps(CYCLE, options={"plan": code, **JANUARY}, maker="maker", checker="payment_checker",
                  run_id=uuid.uuid4().hex, on_step=merged_unpublished_before_the_commit(candidate))
    publish.publish(REVIEW.commit.writes)
    again = pay(CYCLE, plan=code, **JANUARY)["proposal"]
    assert (again["bills"], again["already_billed_in_this_cycle"]) == (0, 1)
    assert query("SELECT paid_to_individual_id::text FROM payments.bills WHERE plan_code = %s",
                 code) == [(ids_of(surname)["Aminah"],)]


def test_a_payroll_pays_a_households_primary_recipient_as_the_ledger_has_it(database) -> None:
    """A household's bill pays its primary recipient: named another by an upload committed between the payroll's
    proposal and its commit and not yet published, the commit refuses, nothing appended; asked again once
    published, the payroll pays the new one."""
    from benefitflow.core.errors import CommitConflict
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.payments.payroll import WORKFLOW as PAYROLL
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
    from benefitflow.workflows import publish
    from tests.integration.payments_data import pay, read_rows

    surname, region, code, household = f"Kamau{tag()}", f"R{tag()}", f"HH-{tag().upper()}", f"H{tag().upper()}"
    register([f"Wanjiru,{surname},1980-01-01,F,,,{household},1,HEAD,L-9,{region}",
              f"Njeri,{surname},2001-01-01,F,,,{household},2,DAUGHTER,L-9,{region}"])
    people = ids_of(surname)
    run(DEFINE, plan=plan_document(code, type="GROUP", beneficiary_data_schema={}, default_criteria={},
                                   entitlement={"fixed_amount": "300.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [{"field": "region", "op": "=",
                                                                          "value": region}]})
    assert pay(CYCLE, plan=code, **JANUARY)["proposal"]["bills"] == 1

    def njeri_named_before_the_commit(step: str, action: Any) -> Any:
        if step == "commit":
            path = config.inbox() / f"recipient-{uuid.uuid4().hex[:8]}.csv"
            path.write_text(f"id,recipient_info\n{people['Wanjiru']},2\n{people['Njeri']},1\n")
            run_steps(INDIVIDUALS, file=path.name, options={"mode": "update", "on_invalid_rows": "reject_file"},
                      maker="maker", checker="checker", run_id=uuid.uuid4().hex,
                      on_step=unpublished)
        return action()

    with pytest.raises(CommitConflict, match="1 of these bills pay someone else since the proposal"):
        run_steps(PAYROLL, options={"cycle": "2026-01", "plan": code}, maker="maker", checker="payment_checker",
                  run_id=uuid.uuid4().hex, on_step=njeri_named_before_the_commit)
    assert query("SELECT count(*) FROM ledger.payrolls WHERE plan_code = %s", code) == [(0,)]
    publish.publish(INDIVIDUALS.commit.writes)
    assert [row["Individual Id"] for row in read_rows(payroll_of(code))] == [people["Njeri"]]


def test_a_payroll_does_not_pay_one_person_for_two_households_in_a_cycle(database) -> None:
    """Amina, alone in her household, is paid its bill, and the household leaves the plan; Aminah's household is
    billed in the same cycle. Merged as one woman between a payroll's proposal and its commit (not published), the
    payroll's commit refuses to pay Aminah the second household's bill; once published, the payroll leaves that bill
    out: she was paid for the cycle."""
    from benefitflow.core.errors import CommitConflict
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.payments.payroll import WORKFLOW as PAYROLL
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
    from benefitflow.workflows import publish
    from tests.integration.payments_data import pay, read_rows

    surname, region, code = f"Wafula{tag()}", f"R{tag()}", f"HH-{tag().upper()}"
    in_region = {"all": [{"field": "region", "op": "=", "value": region}]}
    register([f"Amina,{surname},1991-10-10,F,,,H{tag().upper()},1,HEAD,L-9,{region}"])
    run(DEFINE, plan=plan_document(code, type="GROUP", beneficiary_data_schema={}, default_criteria={},
                                   entitlement={"fixed_amount": "300.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria=in_region)
    assert pay(CYCLE, plan=code, **JANUARY)["proposal"]["bills"] == 1
    assert [row["Individual Id"] for row in read_rows(payroll_of(code))] == [ids_of(surname)["Amina"]]
    run(STATUS, plan=code, status="GRADUATED", reason="moved away",
        criteria={"all": [{"field": "status", "op": "=", "value": "ACTIVE"}]})
    register([f"Aminah,{surname},1991-10-10,F,,,H{tag().upper()},1,HEAD,L-9,{region}"])
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria=in_region)
    assert pay(CYCLE, plan=code, **JANUARY)["proposal"]["bills"] == 1  # Aminah's household: two people, so far
    run(SEARCH, scope="changed")
    (candidate, _, _), = pairs_among(ids_of(surname)).values()

    with pytest.raises(CommitConflict, match="1 of the recipients of this payroll are paid by another bill of the "
                                             "cycle already"):
        run_steps(PAYROLL, options={"cycle": "2026-01", "plan": code}, maker="maker", checker="payment_checker",
                  run_id=uuid.uuid4().hex, on_step=merged_unpublished_before_the_commit(candidate))
    assert query("SELECT count(*) FROM ledger.payrolls WHERE plan_code = %s", code) == [(1,)]
    publish.publish(REVIEW.commit.writes)
    proposal = run(PAYROLL, checker=None, cycle="2026-01", plan=code)["proposal"]
    assert (proposal["bills"], proposal["recipient_paid_in_this_cycle_already"]) == (0, 1)


def test_a_household_plans_cycle_commits_under_the_registrys_lock(database) -> None:
    """A household's bill pays whoever is its primary recipient: while an upload or a merge holds the registry's
    lock, a household plan's cycle waits to commit, so neither changes a household under its checks."""
    import threading

    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT

    surname, region, code, household = f"Otieno{tag()}", f"R{tag()}", f"HH-{tag().upper()}", f"H{tag().upper()}"
    register([f"Akinyi,{surname},1975-05-05,F,,,{household},1,HEAD,L-9,{region}"])
    run(DEFINE, plan=plan_document(code, type="GROUP", beneficiary_data_schema={}, default_criteria={},
                                   entitlement={"fixed_amount": "300.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [{"field": "region", "op": "=",
                                                                          "value": region}]})
    finished = threading.Event()

    def commit_while_the_registry_is_locked(step: str, action: Any) -> Any:
        if step != "commit":
            return action()
        with db.transaction() as holder:  # an upload's or a merge's commit, under way
            holder.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.registry'))")
            committing = threading.Thread(target=lambda: (action(), finished.set()))
            committing.start()
            assert not finished.wait(3), "the cycle committed while the registry was locked"
        committing.join(60)
        assert finished.is_set()
        return None

    run_steps(CYCLE, options={"plan": code, **JANUARY}, maker="maker", checker="payment_checker",
              run_id=uuid.uuid4().hex, on_step=commit_while_the_registry_is_locked)
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(1,)]


def merged_unpublished_before_the_commit(candidate: int) -> Any:
    """A step wrapper: the pair is merged (the newer record survives) just before the commit, and not published."""
    def step_after_the_merge(step: str, action: Any) -> Any:
        if step == "commit":
            run_steps(REVIEW, options={"decision": "CONFIRM", "reason": "one woman", "candidates": [candidate],
                                       "survivor": "newer"}, maker="maker", checker="checker",
                      run_id=uuid.uuid4().hex, on_step=unpublished)
        return action()
    return step_after_the_merge


def unpublished(step: str, action: Any) -> Any:
    return None if step == "publish" else action()


def payroll_of(code: str) -> str:
    """A payroll of the cycle's due bills of this plan, approved: its name."""
    from benefitflow.payments.payroll import WORKFLOW as PAYROLL
    from tests.integration.payments_data import pay
    return pay(PAYROLL, cycle="2026-01", plan=code)["proposal"]["payroll"]


def reconcile_as_failed(payroll: str) -> None:
    """The provider answers that it paid nobody of this payroll."""
    from benefitflow.payments.payroll_reconciliation import WORKFLOW as RECONCILIATION
    from tests.integration.payments_data import read_rows
    rows = read_rows(payroll)
    path = config.inbox() / f"answers-{uuid.uuid4().hex[:8]}.csv"
    lines = [",".join(rows[0])] + [",".join({**row, "Paid": "No", "Receipt": ""}.values()) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    run_steps(RECONCILIATION, file=path.name, options={"payroll": payroll, "on_invalid_rows": "reject_file"},
              maker="maker", checker="payment_checker", run_id=uuid.uuid4().hex)


def test_a_phone_more_people_share_than_the_rules_allow_compares_nobody(database, tmp_path, monkeypatch) -> None:
    """Three records alike only by name and phone (their dates of birth differ): the phone's block finds them, unless
    more people share it than the rules' max_block_size."""
    surname, phone = f"Wanjiku{tag()}", f"+2547{uuid.uuid4().int % 10**8:08d}"
    rows = [f"Grace,{surname},{dob},F,,{phone},,,,L-9,North" for dob in ("1970-01-01", "1985-06-15", "1999-09-09")]

    def pairs_found(search: dict) -> int:
        return query("SELECT count(*) FROM proposals.duplicates_search_proposal p"
                     " JOIN registry.individuals a ON a.individual_id = p.individual_a"
                     " JOIN registry.individuals b ON b.individual_id = p.individual_b"
                     " WHERE p.request_id = %s AND a.last_name = %s AND b.last_name = %s",
                     search["request_id"], surname, surname)[0][0]

    register(rows[:2])
    assert pairs_found(run(SEARCH, scope="changed")) == 1
    strict = tmp_path / "rules.yaml"
    strict.write_text(yaml.safe_dump({**duplicate_rules.load().document, "max_block_size": 2}))
    monkeypatch.setenv(duplicate_rules.RULES_VARIABLE, str(strict))
    register(rows[2:])  # a third person with that phone: the phone's block now holds three
    assert pairs_found(run(SEARCH, scope="changed")) == 0
