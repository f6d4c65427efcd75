"""Duplicate people (issue 22): the registry-wide search at BENCH_ROWS people, its recall on the duplicates the
synthetic file planted and its precision at the review threshold, then the search of what a 10,000-person upload
changed, against the whole registry.

The truth is the generator's: each planted row names the earlier row it repeats (`planted_duplicates`). Rows the
import left out (an invalid row in the household, skip_invalid_rows) are left out of the truth. Two records are
one person when they are in one planted group (a person planted twice gives two duplicates that are one person
too). Recall: planted pairs among the pairs the search keeps (score >= keep_threshold). Precision: pairs at or above
review_threshold that are one person.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.report import PeakMemory, Stages, print_table
from bench.settings import CHECKER, MAKER

if TYPE_CHECKING:
    from benefitflow_dev.synthetic import GeneratedFile

INCREMENTAL_ROWS = 10_000
TARGETS = {"search_seconds": 60.0, "peak_bytes": 2 << 30, "recall": 0.95, "precision": 0.90, "incremental": 10.0}


@dataclass(frozen=True)
class Imported:
    """A synthetic file imported: what was planted in it and the upload that took it in."""

    generated: GeneratedFile
    upload_id: int
    committed: int  # people committed


def bench_duplicates(instance: Any, memory: PeakMemory, imported: Imported) -> None:
    from benefitflow.registry import duplicate_rules

    rules = duplicate_rules.load()
    print(f"\nbenefitflow bench: duplicate search over the whole registry (rules {rules.sha256[:12]}: keep at "
          f">= {rules.document['keep_threshold']}, review at >= {rules.review_threshold})")
    truth = load_truth(imported)
    stages = Stages(memory)
    result = search("registry", stages)
    people = result["proposal"]["people_to_examine"]
    print_table(stages.timings, people, "whole search (excl. approval)")
    search_seconds = search_time(stages)
    peak = max(peak_bytes for _, _, peak_bytes, _ in stages.timings)
    print(f"  people examined {people:,}; pairs kept {result['proposal']['candidate_pairs']:,}, "
          f"{result['proposal']['pairs_at_review_threshold']:,} at the review threshold")
    report_quality(truth, result["request_id"], rules.review_threshold)
    print(f"  search (validate + propose) {search_seconds:.1f} s (target <= {TARGETS['search_seconds']:.0f} s); "
          f"peak memory {peak / 2**20:,.0f} MB (target <= {TARGETS['peak_bytes'] / 2**30:.0f} GB)")

    incremental = import_more(instance)
    stages = Stages(memory)
    result = search("changed", stages)
    seconds = search_time(stages)
    print(f"\n  search of what an upload of {INCREMENTAL_ROWS:,} changed, against the registry: "
          f"{result['proposal']['people_to_examine']:,} people examined, "
          f"{result['proposal']['candidate_pairs']:,} pairs kept in {seconds:.1f} s (validate + propose; target <= "
          f"{TARGETS['incremental']:.0f} s); commit {seconds_of(stages, 'commit'):.1f} s, publish "
          f"{seconds_of(stages, 'publish'):.1f} s")
    report_quality(load_truth(incremental), result["request_id"], rules.review_threshold, label="planted in the upload")


def search_time(stages: Stages) -> float:
    """What the issue's search figures count: validation and the proposal (not the approval, commit or publish)."""
    return seconds_of(stages, "validate") + seconds_of(stages, "propose")


def seconds_of(stages: Stages, step: str) -> float:
    return sum(seconds for name, seconds, _, _ in stages.timings if name == step)


def search(scope: str, stages: Stages) -> dict[str, Any]:
    from benefitflow.registry.duplicates_search import WORKFLOW
    from benefitflow.workflows.direct import run_steps

    return run_steps(WORKFLOW, options={"scope": scope}, maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex,
                     on_step=stages)


def import_more(instance: Any) -> Imported:
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.workflows.direct import run_steps
    from benefitflow_dev.synthetic import write_registry_file

    path = instance.inbox / "bench-duplicates-upload.csv"
    generated = write_registry_file(path, INCREMENTAL_ROWS, seed=22, invalid_share=0.0, duplicate_share=0.0,
                                    likely_duplicate_share=0.01, household_prefix="DU")
    result = run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
                       maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex)
    return Imported(generated, int(result["upload_id"]), int(result["commit"]["rows"]))


@dataclass(frozen=True)
class Truth:
    """The planted duplicates in the registry: each duplicate with its original and kind, and each planted
    record's group (two records are one person when their groups are the same)."""

    planted: list[tuple[str, str, str]]  # (duplicate, original, kind), individual ids
    group: dict[str, str]

    def one_person(self, a: str, b: str) -> bool:
        return a in self.group and self.group[a] == self.group.get(b)


def load_truth(imported: Imported) -> Truth:
    from benefitflow.core import db

    planted = imported.generated.planted_duplicates
    with db.transaction() as cur:
        cur.execute("SELECT row_number, individual_id::text FROM ledger.individual_versions"
                    " WHERE upload_id = %s AND version = 1 AND row_number = ANY(%s)",
                    (imported.upload_id, [row for pair in planted for row in pair[:2]]))
        ids = dict(cur.fetchall())
    kept = [(ids[row], ids[original], kind) for row, original, kind in planted if row in ids and original in ids]
    return Truth(kept, {person: original for duplicate, original, _ in kept for person in (duplicate, original)})


def report_quality(truth: Truth, request_id: int, review_threshold: float, label: str = "planted") -> None:
    """Recall over the planted pairs (by kind), precision at the review threshold."""
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute("SELECT individual_a::text, individual_b::text, score FROM proposals.duplicates_search_proposal"
                    " WHERE request_id = %s", (request_id,))
        pairs = cur.fetchall()
    found = {(a, b) for a, b, _ in pairs}
    by_kind: dict[str, list[bool]] = {}
    for duplicate, original, kind in truth.planted:
        by_kind.setdefault(kind, []).append(tuple(sorted((duplicate, original))) in found)
    hits = [hit for kind_hits in by_kind.values() for hit in kind_hits]
    recall = sum(hits) / len(hits) if hits else 1.0
    reviewed = [(a, b) for a, b, score in pairs if score >= review_threshold]
    precision = sum(truth.one_person(a, b) for a, b in reviewed) / len(reviewed) if reviewed else 1.0
    print(f"  recall on {len(hits):,} {label} pairs: {recall:.3f} (target >= {TARGETS['recall']}; by kind: "
          + ", ".join(f"{kind} {sum(h) / len(h):.2f}" for kind, h in sorted(by_kind.items()))
          + f"); precision of {len(reviewed):,} pairs at >= {review_threshold}: {precision:.3f} "
          f"(target >= {TARGETS['precision']})")
