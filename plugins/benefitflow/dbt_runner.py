"""Running the dbt project: in-process for a proposal, through Cosmos for publishing."""

from __future__ import annotations

from typing import Any

import yaml

from benefitflow.config import DBT_PROJECT_DIR


class DbtError(RuntimeError):
    pass


def run(args: list[str], variables: dict[str, Any] | None = None) -> None:
    """`dbt <args>` in this process against the platform database; raise with dbt's message on failure."""
    from dbt.cli.main import dbtRunner

    command = [*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if variables:
        command += ["--vars", yaml.safe_dump(variables, default_flow_style=True).strip()]
    result = dbtRunner().invoke(command)
    if not result.success:
        raise DbtError(f"dbt {' '.join(args)} failed: {result.exception or 'see the task log'}")


def cosmos_configs() -> dict[str, Any]:
    """Project, profile and execution settings shared by every Cosmos task group."""
    from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig
    from cosmos.constants import ExecutionMode, InvocationMode

    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    return {
        "project_config": ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=manifest if manifest.exists() else None,
        ),
        "profile_config": ProfileConfig(
            profile_name="benefitflow", target_name="default",
            profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
        ),
        "execution_config": ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER,
        ),
    }
