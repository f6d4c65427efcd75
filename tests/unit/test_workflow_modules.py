"""Every workflow module reads in step order: the functions its WORKFLOW hands to a step come before those
of the later steps (intake, validate, propose, approve, commit, publish), and the declaration is last,
where the functions it names are defined."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "benefitflow"
STEPS = ("intake", "validate", "propose", "approve", "commit", "publish")
MODULES = sorted(path for path in PACKAGE.glob("*/*.py") if "\nWORKFLOW = " in path.read_text())


def _declaration(tree: ast.Module) -> ast.Assign:
    return next(node for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(target, ast.Name) and target.id == "WORKFLOW" for target in node.targets))


def test_the_modules_are_found() -> None:
    assert len(MODULES) >= 18


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_a_workflow_module_defines_its_steps_in_step_order(path: Path) -> None:
    tree = ast.parse(path.read_text())
    defined = {node.name: node.lineno for node in tree.body if isinstance(node, ast.FunctionDef)}
    declaration = _declaration(tree)
    if not isinstance(declaration.value, ast.Call):
        return  # a variant of another module's workflow (dataclasses.replace)
    handed = sorted((defined[node.id], STEPS.index(keyword.arg), node.id)
                    for keyword in declaration.value.keywords if keyword.arg in STEPS
                    for node in ast.walk(keyword.value) if isinstance(node, ast.Name) and node.id in defined)
    steps = [step for _, step, _ in handed]
    assert steps == sorted(steps), [(name, STEPS[step]) for _, step, name in handed]
    assert all(line < declaration.lineno for line, _, _ in handed)
