"""Who may download an upload's original and error report: its maker, its operation's checkers, operators."""

import pytest

from benefitflow.platform.upload_files import may_see_upload_files


@pytest.mark.parametrize(
    ("username", "roles", "allowed"),
    [
        ("maker", {"Maker"}, True),  # the upload's own maker
        ("checker", {"RegistryCheckers"}, True),  # the checker group of individuals_import
        ("engineer", {"DataEngineer"}, True),
        ("admin", {"Admin"}, True),
        ("maker2", {"Maker"}, False),  # another maker
        ("payment_checker", {"PaymentCheckers"}, False),  # another operation's checkers
        ("viewer", {"Viewer"}, False),
        ("nobody", set(), False),
    ],
)
def test_only_those_who_handled_the_upload_may_download_its_files(username: str, roles: set[str],
                                                                   allowed: bool) -> None:
    assert may_see_upload_files(username, roles, maker="maker", operation="individuals_import") is allowed


def test_an_operation_no_checker_group_answers_leaves_its_maker_and_the_operators() -> None:
    assert may_see_upload_files("checker", {"RegistryCheckers"}, maker="maker", operation="no_such_operation") is False
    assert may_see_upload_files("maker", set(), maker="maker", operation="no_such_operation") is True
    assert may_see_upload_files("engineer", {"DataEngineer"}, maker="maker", operation="no_such_operation") is True
