"""A user's error is told once, at the DAG's boundary: a failed run with the message, never a retry."""

import pytest
from airflow.sdk.exceptions import AirflowFailException

from benefitflow.core.errors import CommitConflict, IntakeError, RequestError, UserError
from benefitflow.core.file_store import InboxError
from benefitflow.core.filters import FilterError
from benefitflow.programmes.plans import PlanError
from benefitflow.workflows.dag import user_errors_fail_the_run
from benefitflow.workflows.export_files import ExportError


@pytest.mark.parametrize("error", [IntakeError, RequestError, PlanError, FilterError, ExportError, InboxError,
                                   CommitConflict])
def test_every_users_error_fails_the_run_with_its_message(error: type[UserError]) -> None:
    with pytest.raises(AirflowFailException, match="row 3, column dob: not a date") as failed, \
            user_errors_fail_the_run():
        raise error("row 3, column dob: not a date")
    assert isinstance(failed.value.__cause__, error)


def test_a_platform_error_is_not_dressed_as_the_users() -> None:
    with pytest.raises(ConnectionError), user_errors_fail_the_run():  # retried as Airflow retries a task
        raise ConnectionError("database restarting")
