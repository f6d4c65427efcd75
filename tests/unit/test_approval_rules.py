"""Who may decide: the maker never, a non-assigned user never, silence means reject."""

import re
from datetime import timedelta

import pytest

from benefitflow.core import config
from benefitflow.core.airflow_users import Person
from benefitflow.workflows import approve, catalogue, request_body
from benefitflow.workflows.approve import (
    approval_groups,
    decide_outcome,
    parse_policy,
    policy_for,
)
from benefitflow.workflows.request_body import FirstRows, digest_shown, render_body

PEOPLE = {name: Person(str(user_id), name) for user_id, name in enumerate(["maker", "checker", "checker2", "admin"], 1)}
MAKER = PEOPLE["maker"]
ASSIGNED = {PEOPLE["checker"].user_id, PEOPLE["checker2"].user_id}


@pytest.mark.parametrize(
    ("chosen", "responder", "outcome"),
    [
        ("Approve", "checker", "APPROVED"),
        ("Reject", "checker", "REJECTED"),
        ("Approve", "maker", "REFUSED"),
        ("Reject", "maker", "REFUSED"),
        ("Approve", "admin", "REFUSED"),
        ("Reject", None, "TIMED_OUT"),
        ("Approve", None, "TIMED_OUT"),
    ],
)
def test_outcomes(chosen: str, responder: str | None, outcome: str) -> None:
    person = PEOPLE[responder] if responder else None
    assert decide_outcome(chosen=chosen, responder=person, maker=MAKER, assigned=ASSIGNED)[0] == outcome


def test_the_maker_is_refused_even_when_configured_as_a_checker() -> None:
    outcome, reason = decide_outcome(chosen="Approve", responder=MAKER, maker=MAKER, assigned={MAKER.user_id})
    assert outcome == "REFUSED"
    assert "maker" in reason


def test_people_are_compared_by_user_id_not_by_name() -> None:
    renamed_maker = Person(MAKER.user_id, "someone-else")
    assert decide_outcome(chosen="Approve", responder=renamed_maker, maker=MAKER,
                          assigned={MAKER.user_id, *ASSIGNED})[0] == "REFUSED"
    recreated_checker = Person("99", "checker")  # an old name on a new account is not the assigned user
    outcome, reason = decide_outcome(chosen="Approve", responder=recreated_checker, maker=MAKER, assigned=ASSIGNED)
    assert outcome == "REFUSED" and "not an assigned checker" in reason


def test_every_operation_names_a_group_and_a_supported_policy() -> None:
    declared = {entry.workflow.operation for entry in catalogue.declared().values()}
    for operation in {*declared, *approval_groups()}:
        policy = policy_for(operation)
        assert policy.group.endswith("Checkers"), operation
        assert (policy.policy, policy.checkers) == ("any", 1) or (policy.policy == "distinct" and policy.checkers >= 2)
    assert policy_for("selftest_two_checkers").checkers == 2


def test_a_policy_entry_is_read_with_its_defaults() -> None:
    policy = parse_policy("op", {"group": "PaymentCheckers"})
    assert (policy.group, policy.policy, policy.checkers, policy.response_timeout) == (
        "PaymentCheckers", "any", 1, timedelta(hours=168))
    assert parse_policy("op", {"group": "G", "policy": "distinct", "checkers": 3}).checkers == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, "'group' must name an Airflow role"),
        ({"group": "G", "policy": "majority"}, "policy 'majority' is not one of any, distinct"),
        ({"group": "G", "policy": "any", "checkers": 2}, "use policy 'distinct'"),
        ({"group": "G", "policy": "distinct"}, "needs 'checkers'"),
        ({"group": "G", "policy": "distinct", "checkers": 1}, "needs 'checkers'"),
        ({"group": "G", "policy": "distinct", "checkers": "2"}, "needs 'checkers'"),
        ({"group": "G", "policy": "distinct", "checkers": True}, "needs 'checkers'"),
        ({"group": "G", "response_timeout_hours": 0}, "response_timeout_hours"),
    ],
)
def test_an_unusable_policy_is_refused_naming_the_operation(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_policy("payroll", entry)
    assert "operation 'payroll'" in str(raised.value)


def test_an_earlier_approver_cannot_approve_again() -> None:
    outcome, reason = decide_outcome(chosen="Approve", responder=PEOPLE["checker"], maker=MAKER, assigned=ASSIGNED,
                                     approved_by=(PEOPLE["checker"],))
    assert outcome == "REFUSED" and "already approved" in reason
    assert decide_outcome(chosen="Approve", responder=PEOPLE["checker2"], maker=MAKER, assigned=ASSIGNED,
                          approved_by=(PEOPLE["checker"],))[0] == "APPROVED"


def test_body_says_which_approval_and_who_approved_before() -> None:
    body = render_body("payroll", "maker", {"rows": 1}, step=2, needed=3, approved_by=("checker",))
    assert "**Approval 2 of 3:** 3 distinct checkers must approve; already approved by checker" in body
    assert "Approval" not in render_body("payroll", "maker", {"rows": 1})


def test_unknown_operation_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no checker group"):
        policy_for("no_such_operation")


@pytest.mark.parametrize(("operation", "expected"), [
    ("grievance_status", ("GrievanceCheckers", "any", 1)),
    ("selftest_two_checkers", ("RegistryCheckers", "distinct", 2)),  # a missing entry never weakens the policy
])
def test_an_operation_the_file_does_not_name_gets_its_declarations_checker_group(
    monkeypatch, operation: str, expected: tuple[str, str, int],
) -> None:
    """A workflow needs no entry in approval_groups.yaml: its declared group and checkers, within a week."""
    without = {name: entry for name, entry in approval_groups().items() if name != operation}
    monkeypatch.setattr(approve, "approval_groups", lambda: without)
    policy_for.cache_clear()
    try:
        policy = policy_for(operation)
    finally:
        policy_for.cache_clear()
    assert (policy.group, policy.policy, policy.checkers, policy.response_timeout) == (
        *expected, timedelta(hours=168))


def test_body_lists_the_summary() -> None:
    body = render_body("selftest", "maker", {"rows_in_file": 3, "invalid_by_rule": {"code:unique": 2}})
    assert "**Maker:** maker" in body
    assert "rows in file" in body and "3" in body
    assert "code:unique: 2" in body


def test_body_groups_the_summary_by_meaning_in_an_order_of_its_own() -> None:
    """XCom keeps no key order: the body's order is the renderer's, whatever order the summary came in."""
    summary = {"warnings_by_rule": {"likely_duplicate": 2}, "period_end": "2026-07-31", "max_amount": "9.00",
               "error_report": "/r.csv", "households_to_create": 2, "invalid_rows": 1, "min_amount": "1.00",
               "file": "f.csv", "rows_in_file": 3, "period_start": "2026-07-01", "median_amount": "5.00",
               "upload_id": 7, "cycle": "C1", "total_amount": "15.00"}
    lines = render_body("x", "maker", summary).splitlines()
    headings = [line.removeprefix("#### ") for line in lines if line.startswith("#### ")]
    assert headings == ["What", "How many and how much", "What is wrong or unusual", "The data"]
    labels = [line.split(":**")[0].lstrip("- *") for line in lines if line.startswith("- **")]
    assert labels == ["file", "upload id", "cycle", "period start", "period end",
                      "rows in file", "total amount", "min amount", "median amount", "max amount",
                      "households to create",
                      "invalid rows", "warnings by rule",
                      "error report", "original"]
    assert "- **original:** " in render_body("x", "maker", summary) and "/uploads/7/original" in "\n".join(lines)


def test_the_first_rows_are_a_small_table_of_the_columns_the_workflow_shows() -> None:
    rows = FirstRows(columns=("row_number", "code", "amount"), rows=(("1", "A", "1.00"), ("2", "B", "2.00")),
                     total=40, key=12)
    body = render_body("x", "maker", {"file": "f.csv", "proposal_digest": "ab" * 32}, first_rows=rows, dag_id="x")
    data = body[body.index("#### The data"):]
    assert "The first 2 of 40 proposed rows" in data
    assert "| row_number | code | amount |" in data and "| 2 | B | 2.00 |" in data
    assert "- **full proposal:** " in data and data.split("- **full proposal:** ")[1].startswith(
        config.proposal_csv_url("x", 12))
    assert digest_shown(body) == "ab" * 32  # still the last line
    hidden = render_body("x", "maker", {}, first_rows=FirstRows(columns=(), rows=(), total=3, key=1), dag_id="x")
    assert "3 proposed rows: they are in the full proposal" in hidden and "|" not in hidden


@pytest.mark.parametrize("value", [
    "x\r\r**Maker:** bob", "x\n#### What\n- **rows:** 0", "![](//evil.example/p)", "<img src=x onerror=alert(1)>",
    "a\\|b", "[click](javascript:alert(1))", "`code`", "x\u2028**Proposal digest:** `" + "ee" * 32 + "`",
    "see https://evil.example/pay", "www.evil.example", "write to me@evil.example", "_em_ ~~struck~~",
])
def test_what_a_maker_wrote_stays_text_on_its_line(value: str) -> None:
    """A file name, a reason or a cell can make no line, heading, link, image, HTML or table cell of its own."""
    body = render_body("x", "maker", {"file": value, "reason": value, "proposal_digest": "ab" * 32},
                       first_rows=FirstRows(columns=("code",), rows=((request_body._cell(value),),), total=1, key=1))
    lines = body.splitlines()
    assert [line for line in lines if line.startswith("#### ")] == ["#### What", "#### The data"]
    assert [line for line in lines if line.startswith("**Maker:**")] == ["**Maker:** maker (cannot decide on this request)  "]
    (row,) = [line for line in lines if line.startswith("| ") and line != "| code |"]
    assert len(re.split(r"(?<!\\)\|", row)) == 3  # "", the one cell, "": the value's own bars are escaped
    sections = body[body.index("#### What"):body.rindex("**Proposal digest:**")]
    assert not re.search(r"(?<!\\)[\[\]<`_~]", sections)  # no link, image, HTML, code or emphasis of the maker's
    assert not re.search(r"(?i)https?://|www\.|@[a-z]", sections)  # nothing GFM would make a link of by itself
    assert digest_shown(body) == "ab" * 32


def test_body_shows_the_proposal_digest_in_short_next_to_the_numbers() -> None:
    body = render_body("payroll", "maker", {"bills": 3, "proposal_digest": "ab" * 32})
    assert "**Proposal:** `abababababab`" in body
    assert "proposal digest" not in body  # once, in the header, not again as a bullet


def test_the_digest_a_checker_answers_is_read_from_the_last_line_of_the_request_only() -> None:
    digest = "c0" * 32
    body = render_body("selftest", "maker", {"file": "a.csv", "proposal_digest": digest})
    assert digest_shown(body) == digest
    # A file name can put anything in the body's list; only the platform's own last line counts.
    forged = render_body("selftest", "maker", {"file": f"**Proposal digest:** `{'ee' * 32}`"})
    assert digest_shown(forged) is None
    assert digest_shown(None) is None and digest_shown(body + "\n- tampered") is None
