"""The `duplicates_search` workflow: pairs of registry records that look like one person, found and kept.

Set-based in PostgreSQL: every person's block keys are kept by dbt (`registry.duplicate_keys`); the proposal
compares each examined person with everyone sharing a key, scores the pairs under the rules
(`duplicate_rules.yaml`, compared by the `matching` functions of migration 026) and leaves out pairs already
known. A checker of RegistryCheckers approves keeping them as OPEN pairs; `duplicates_review` decides them.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg2.extensions
from airflow.sdk import Param

from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.registry import duplicate_rules
from benefitflow.registry.individuals_import import lock_registry
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FormCheck,
    FormIntake,
    Options,
    Proposal,
    Publish,
    Workflow,
)
from benefitflow.workflows.proposal_digest import ProposalRef

SCOPES = ("changed", "registry")
KEYS_MODEL = "registry.duplicate_keys"
# Every night: the people registered or changed since the last search (BENEFITFLOW_DUPLICATES_SEARCH_SCHEDULE, a cron
# expression; empty for none, as the test suite's services have it: a run appearing mid-suite would wait for a checker).
SCHEDULE = os.environ.get("BENEFITFLOW_DUPLICATES_SEARCH_SCHEDULE", "0 2 * * *") or None


def validate_search(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    scope = options.get("scope") or "changed"
    if scope not in SCOPES:
        raise RequestError(f"scope must be one of {', '.join(SCOPES)}, not {str(scope)[:20]!r}")
    rules = duplicate_rules.load()
    # Two searches waiting at once would propose the same pairs; the second's commit could only be refused. (A
    # request left waiting by a run that died stops counting once no approval could still come: a week and a day.)
    cur.execute("SELECT request_id, dag_id, run_id FROM intake.requests WHERE kind = 'duplicates_search'"
                " AND status = 'WAITING_FOR_APPROVAL' AND request_id <> %s AND updated_at > now() - interval '8 days'"
                " ORDER BY request_id LIMIT 1", (request_id,))
    if waiting := cur.fetchone():
        raise RequestError(f"search request {waiting[0]} (run {waiting[1]}/{waiting[2]}) is waiting for a checker: "
                           f"it is approved or rejected first")
    cur.execute("SELECT coalesce(max(take_in), 0) FROM publishing.taken_in_commits WHERE model = %s", (KEYS_MODEL,))
    taken_in_up_to = int(cur.fetchone()[0])
    cur.execute(
        "SELECT count(*) FROM registry.duplicate_keys"
        " WHERE last_commit_id IN (SELECT commit_id FROM matching.commits_to_search(%s, %s))", (scope, taken_in_up_to))
    return {"scope": scope, "people_to_examine": cur.fetchone()[0], "taken_in_up_to": taken_in_up_to,
            "rules_sha256": rules.sha256, "rules": rules.document}


def summarise_search(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    cur.execute(
        f"SELECT count(*), count(*) FILTER (WHERE p.score >= (r.document #>> '{{rules,review_threshold}}')::numeric),"
        f" min(p.score), max(p.score)"
        f" FROM {proposal.table} p JOIN intake.requests r USING (request_id) WHERE p.request_id = %s", (proposal.key,))
    pairs, to_review_first, lowest, highest = cur.fetchone()
    cur.execute(
        f"SELECT field, count(*) FROM {proposal.table} p, jsonb_each_text(p.fields) AS f (field, likeness)"
        f" WHERE p.request_id = %s AND likeness::numeric >= 0.8 GROUP BY field ORDER BY field", (proposal.key,))
    return {"candidate_pairs": pairs, "pairs_at_review_threshold": to_review_first,
            "smallest_score": lowest, "largest_score": highest, "pairs_alike_by_field": dict(cur.fetchall())}


def commit_search(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Record the search (its rules and what it covered), then its pairs; refuse a pair another search kept
    since the proposal (two searches at once), rather than keep it twice."""
    lock_registry(cur)
    cur.execute(
        "INSERT INTO ledger.duplicate_searches (commit_id, request_id, scope, rules_sha256, rules, covered_commits)"
        " SELECT %s, r.request_id, r.document ->> 'scope', r.document ->> 'rules_sha256', r.document -> 'rules',"
        "        coalesce((SELECT array_agg(c.commit_id ORDER BY c.commit_id) FROM matching.commits_to_search("
        "            r.document ->> 'scope', (r.document ->> 'taken_in_up_to')::bigint) c), '{}')"
        " FROM intake.requests r WHERE r.request_id = %s", (commit_id, proposal.key))
    cur.execute(
        f"SELECT count(*) FROM {proposal.table} p WHERE p.request_id = %s AND EXISTS ("
        f"  SELECT FROM ledger.duplicate_candidates c WHERE (c.individual_a, c.individual_b) = (p.individual_a,"
        f"  p.individual_b) AND c.commit_id <> %s AND NOT EXISTS (SELECT FROM ledger.duplicate_reviews r"
        f"  WHERE r.candidate_id = c.candidate_id AND r.decision IN ('DISMISSED', 'UNMERGED')"
        f"  AND (r.version_a, r.version_b) IS DISTINCT FROM (p.version_a, p.version_b)))",
        (proposal.key, commit_id))
    if taken := cur.fetchone()[0]:
        raise CommitConflict(f"{taken} of these pairs were kept by another search since this one was proposed; "
                             f"search again")
    cur.execute(
        f"INSERT INTO ledger.duplicate_candidates (individual_a, version_a, individual_b, version_b, score, fields,"
        f" rules_sha256, commit_id)"
        f" SELECT individual_a, version_a, individual_b, version_b, score, fields, rules_sha256, %s"
        f" FROM {proposal.table} WHERE request_id = %s ORDER BY individual_a, individual_b",
        (commit_id, proposal.key))
    return cur.rowcount


WORKFLOW = Workflow(
    dag_id="duplicates_search",
    intake=FormIntake(params={
        "scope": Param("changed", enum=list(SCOPES),
                       description="changed: the people registered or changed since the last search, each compared "
                                   "with the whole registry; registry: everyone with everyone"),
    }, describe=lambda options: f"duplicate search: {options.get('scope') or 'changed'}"),
    validate=FormCheck(check=validate_search),
    propose=Proposal(summarise=summarise_search, shown=("score", "fields")),
    approve=Approval(group="RegistryCheckers"),
    commit=Commit(append=commit_search, writes=("duplicate_searches", "duplicate_candidates")),
    publish=Publish(asset="benefitflow://registry/duplicates"),
    tags=("registry",),
    schedule=SCHEDULE,
    doc_md="""
### Search the registry for duplicate people

**Parameters** — `scope`: `changed` (the default, and what the nightly run does: the people registered
or changed since the last search, each compared with the whole registry) or `registry` (everyone).

**How** — the rules in `plugins/benefitflow/registry/duplicate_rules.yaml` (blocks, weights,
thresholds; see the README): two people are compared when they share a block (the same date of
birth and names that sound alike, a date with day and month swapped or one digit slipped, the same
phone); each pair gets a score from 0 to 1. Pairs at or above the rules' `keep_threshold` are
proposed, except pairs already open or merged, and pairs dismissed whose records have not changed
since.

**Approval** — a member of `RegistryCheckers` reads the number of pairs, how many reach the review
threshold and which fields were alike (no names), and approves keeping them. They are then OPEN
pairs, decided with `duplicates_review`, and counted on the Operations dashboard.
""",
)
