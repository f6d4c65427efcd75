"""What stops a run with a message for the user rather than a retry."""

from airflow.sdk.exceptions import AirflowFailException


class WorkflowError(AirflowFailException):
    """Stops the run with a message for the user (no retry: the input is wrong, not the system)."""


class CommitConflict(WorkflowError):
    """The registry changed between proposal and commit in a way the proposal cannot survive."""
