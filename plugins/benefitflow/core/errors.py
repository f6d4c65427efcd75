"""What a user got wrong, told to that user: one base class for every such error.

A file, a parameter, a filter or a plan document that cannot be accepted, or a proposal the
registry moved away from before its commit, raises a `UserError` whose message is for the maker.
The steps raise them as they are; the DAG's tasks turn them into a failed run without retries, in
one place (`workflows.dag`): nothing but that boundary knows about Airflow's exceptions.
"""


class UserError(ValueError):
    """The input is wrong, not the system: the run stops with this message and is not retried."""


class WorkflowError(UserError):
    """A step refuses what it was given (a file, its rows, a parameter, a decision that does not fit)."""


class CommitConflict(WorkflowError):
    """The registry changed between proposal and commit in a way the proposal cannot survive."""


class IntakeError(UserError):
    """A file handed in that cannot be taken in (its name, size, encoding, header or rows)."""


class RequestError(UserError):
    """A request's parameters that cannot be carried out (the message is for the maker)."""
