"""Who may decide: the maker never, a non-assigned user never, silence means reject."""

import pytest

from benefitflow.approval import decide_outcome, policy_for, render_body

ASSIGNED = {"checker", "checker2"}


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
    assert decide_outcome(chosen=chosen, responder=responder, maker="maker", assigned=ASSIGNED)[0] == outcome


def test_the_maker_is_refused_even_when_configured_as_a_checker() -> None:
    outcome, reason = decide_outcome(chosen="Approve", responder="maker", maker="maker", assigned={"maker"})
    assert outcome == "REFUSED"
    assert "maker" in reason


def test_every_configured_operation_names_a_group_and_a_supported_policy() -> None:
    for operation in ("selftest", "individuals_import", "payroll"):
        policy = policy_for(operation)
        assert policy["group"].endswith("Checkers")
        assert policy["policy"] == "any"


def test_unknown_operation_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no checker group"):
        policy_for("no_such_operation")


def test_body_lists_the_summary() -> None:
    body = render_body("selftest", "maker", {"rows_in_file": 3, "invalid_by_rule": {"code:unique": 2}})
    assert "**Maker:** maker" in body
    assert "rows in file" in body and "3" in body
    assert "code:unique: 2" in body


def test_body_puts_the_file_and_counts_first_and_the_report_last() -> None:
    summary = {"error_report": "/r.csv", "households_to_create": 2, "invalid_rows": 1, "file": "f.csv", "rows_in_file": 3}
    labels = [line.split(":**")[0].lstrip("- *") for line in render_body("x", "maker", summary).splitlines()[3:]]
    assert labels == ["file", "rows in file", "invalid rows", "households to create", "error report"]
