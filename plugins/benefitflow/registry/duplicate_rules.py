"""The rules for finding duplicate people (duplicate_rules.yaml, or the file BENEFITFLOW_DUPLICATE_RULES names).

Read and checked against duplicate_rules.schema.json; a search and every upload's likely-duplicate check pass
the document to the database's `matching` functions (migration 026) as jsonb: which blocks, the weights, the
thresholds. Nothing of it is pasted into SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from benefitflow.core.errors import UserError

DEFAULT_RULES_FILE = Path(__file__).with_name("duplicate_rules.yaml")
SCHEMA_FILE = Path(__file__).with_name("duplicate_rules.schema.json")
RULES_VARIABLE = "BENEFITFLOW_DUPLICATE_RULES"
# The blocks a search may use, in the order of the database's matching.block_names() and of registry.duplicate_keys'
# columns (dbt macro duplicate_blocks); the schema's list (tests check the three agree).
BLOCKS = tuple(json.loads(SCHEMA_FILE.read_text())["properties"]["blocks"]["items"]["enum"])


class RulesError(UserError):
    pass


@dataclass(frozen=True)
class DuplicateRules:
    document: dict[str, Any]

    @property
    def sha256(self) -> str:
        """The rules' version: the same document (whatever its layout) has the same one."""
        return hashlib.sha256(json.dumps(self.document, sort_keys=True).encode()).hexdigest()

    @property
    def blocks(self) -> tuple[str, ...]:
        """The blocks the rules use, in BLOCKS' order."""
        return tuple(block for block in BLOCKS if block in self.document["blocks"])

    @property
    def review_threshold(self) -> float:
        return float(self.document["review_threshold"])

    def as_json(self) -> str:
        return json.dumps(self.document, sort_keys=True)


def rules_file() -> Path:
    return Path(os.environ.get(RULES_VARIABLE) or DEFAULT_RULES_FILE)


def load(path: Path | None = None) -> DuplicateRules:
    path = path or rules_file()
    stat = path.stat() if path.exists() else None
    return _load(path, stat.st_mtime_ns if stat else 0)


@cache
def _load(path: Path, _modified: int) -> DuplicateRules:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"duplicate rules {path}: cannot be read as YAML ({exc})") from exc
    return parse(document, str(path))


def parse(document: Any, where: str = "duplicate rules") -> DuplicateRules:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    if problems := sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path)):
        described = "; ".join(f"{'/'.join(map(str, p.absolute_path)) or '(top)'}: {p.message}" for p in problems[:5])
        raise RulesError(f"{where}: {described}")
    if document["review_threshold"] < document["keep_threshold"]:
        raise RulesError(f"{where}: review_threshold ({document['review_threshold']}) is below keep_threshold "
                         f"({document['keep_threshold']})")
    return DuplicateRules(document)
