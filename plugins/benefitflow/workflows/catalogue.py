"""Every workflow of the platform, found where it is declared: no list of workflows is kept by hand.

A workflow is a module-level `WORKFLOW` in a module of a domain package (every subpackage of
`benefitflow` but the machinery and the deployment's platform pieces); the naming rule (module name = DAG id, and
operation = DAG id but for the self-test's older operation names) is checked by the DagBag tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache

import benefitflow
from benefitflow.workflows.declaration import Workflow

NOT_DOMAINS = frozenset({"core", "workflows", "platform", "sql", "registry_api"})


@dataclass(frozen=True)
class Declared:
    module: str  # e.g. benefitflow.payments.payroll
    workflow: Workflow


@cache
def declared() -> dict[str, Declared]:
    """Each workflow by its DAG id, with the module that declares it."""
    found: dict[str, Declared] = {}
    for package in pkgutil.iter_modules(benefitflow.__path__, "benefitflow."):
        if not package.ispkg or package.name.rsplit(".", 1)[1] in NOT_DOMAINS:
            continue
        for module in pkgutil.iter_modules(importlib.import_module(package.name).__path__, package.name + "."):
            workflow = getattr(importlib.import_module(module.name), "WORKFLOW", None)
            if isinstance(workflow, Workflow):
                if workflow.dag_id in found:
                    raise ValueError(f"DAG id {workflow.dag_id} is declared twice: {found[workflow.dag_id].module} "
                                     f"and {module.name}")
                found[workflow.dag_id] = Declared(module.name, workflow)
    return found


def by_operation(operation: str) -> Workflow | None:
    return next((item.workflow for item in declared().values() if item.workflow.operation == operation), None)
