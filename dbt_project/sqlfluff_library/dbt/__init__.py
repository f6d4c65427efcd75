"""What sqlfluff's jinja templater needs of dbt's `dbt.` namespace to lint the models (no dbt, no database)."""


def current_timestamp() -> str:
    return "now()"
