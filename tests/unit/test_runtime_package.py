"""The package Airflow loads (plugins/) holds only what production runs: the local stack, the demo, synthetic
data and the simulated provider are development tools (devtools/), never imported by it nor copied into images."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_ALL = ("import importlib, pkgutil, benefitflow, benefitflow_plugin\n"
              "for module in pkgutil.walk_packages(benefitflow.__path__, 'benefitflow.'):\n"
              "    importlib.import_module(module.name)\n")


def test_every_runtime_module_imports_without_the_development_tools(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_runtime_file_names_the_development_tools() -> None:
    naming = [path.relative_to(ROOT) for path in (ROOT / "plugins").rglob("*.py")
              if re.search(r"\bbenefitflow_dev\b", path.read_text())]
    # The deployment's CLI tells where `make up`'s commands went; docstrings say where the stack lives.
    allowed = {Path("plugins/benefitflow/platform/cli.py"), Path("plugins/benefitflow/platform/system_users.py"),
               Path("plugins/benefitflow/platform/task_secrets.py"), Path("plugins/benefitflow/core/dbt_preload.py")}
    assert set(naming) <= allowed
    for path in allowed:
        assert not re.search(r"^\s*(from|import) benefitflow_dev", (ROOT / path).read_text(), flags=re.M)
    assert not (ROOT / "plugins" / "benefitflow" / "synthetic.py").exists()
