-- What a duplicates_review commit appends (duplicates_review.py runs these, in one transaction, under the registry's
-- lock). {proposal} is the review's proposal table; %(request_id)s the request, %(commit_id)s the commit. Only the
-- allowed rows of the proposal count.

-- name: stale
-- Allowed pairs whose records or review moved on since the proposal: the commit is refused (ask again).
SELECT p.candidate_id
FROM {proposal} p
WHERE p.request_id = %(request_id)s AND p.allowed
  AND ((SELECT max(v.version) FROM ledger.individual_versions v WHERE v.individual_id = p.individual_a) <> p.based_on_a
    OR (SELECT max(v.version) FROM ledger.individual_versions v WHERE v.individual_id = p.individual_b) <> p.based_on_b
    OR (SELECT r.decision FROM ledger.duplicate_reviews r WHERE r.candidate_id = p.candidate_id
        ORDER BY r.version DESC LIMIT 1) IS DISTINCT FROM
       CASE p.decision WHEN 'UNMERGED' THEN 'CONFIRMED' END)
ORDER BY p.candidate_id
LIMIT 5

-- name: bills_paid_twice
-- The bills the merges of this review cancel, as the ledger says now, read once for all pairs (temporary, dropped at
-- commit).
CREATE TEMPORARY TABLE review_bills_paid_twice ON COMMIT DROP AS
SELECT twice.*
FROM (SELECT array_agg(p.retired_id ORDER BY p.candidate_id) AS retired,
             array_agg(p.survivor_id ORDER BY p.candidate_id) AS survivors
      FROM {proposal} p
      WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision = 'CONFIRMED') AS merges
CROSS JOIN LATERAL ledger.bills_paid_twice(merges.retired, merges.survivors) AS twice

-- name: bills_moved_on
-- Merges whose bills to cancel are no longer those the proposal showed (billed, paid, failed or put in a payroll
-- since): the commit is refused (ask again).
SELECT p.candidate_id
FROM {proposal} p
LEFT JOIN (
    SELECT t.retired_id, count(t.bill_id) AS bills, coalesce(sum(t.amount), 0) AS amount,
           bool_or(t.waits_for_reconciliation) AS waits
    FROM review_bills_paid_twice t GROUP BY t.retired_id
) AS now ON now.retired_id = p.retired_id
WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision = 'CONFIRMED'
  AND (coalesce(now.bills, 0), coalesce(now.amount, 0), coalesce(now.waits, false))
      IS DISTINCT FROM (p.bills_to_cancel, p.amount_to_cancel, false)
ORDER BY p.candidate_id
LIMIT 5

-- name: cancelled_bills
-- Where a merge finds the person billed twice in a cycle, one of the two bills is cancelled (bills_paid_twice says
-- which): paid to nobody, until an unmerge reinstates it.
INSERT INTO ledger.bill_events (bill_id, status, reason, commit_id)
SELECT t.bill_id, 'CANCELLED',
       'billed twice: individual ' || p.retired_id || ' merged into ' || p.survivor_id || ' as a duplicate',
       %(commit_id)s
FROM review_bills_paid_twice t
JOIN {proposal} p ON p.retired_id = t.retired_id
WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision = 'CONFIRMED' AND t.bill_id IS NOT NULL

-- name: reviews
INSERT INTO ledger.duplicate_reviews (candidate_id, version, decision, survivor_id, retired_id, version_a, version_b,
                                      reason, request_id, commit_id)
SELECT p.candidate_id,
       coalesce((SELECT max(r.version) FROM ledger.duplicate_reviews r WHERE r.candidate_id = p.candidate_id), 0) + 1,
       p.decision, p.survivor_id, p.retired_id, p.version_a, p.version_b, q.document ->> 'reason', p.request_id,
       %(commit_id)s
FROM {proposal} p JOIN intake.requests q USING (request_id)
WHERE p.request_id = %(request_id)s AND p.allowed

-- name: reinstated_bills
-- An unmerge reinstates the bills the pair's merge cancelled (ledger.bills_reinstated_by_unmerge, migration 028):
-- each is again what it was (due, held, or failed in its payroll). After the reviews: the database refuses any other
-- reinstatement.
INSERT INTO ledger.bill_events (bill_id, status, reason, commit_id)
SELECT its.bill_id, 'REINSTATED',
       'unmerged duplicate: individual ' || p.retired_id || ' is not ' || p.survivor_id, %(commit_id)s
FROM {proposal} p
CROSS JOIN LATERAL ledger.bills_reinstated_by_unmerge(p.candidate_id, p.retired_id, p.survivor_id,
                                                      %(commit_id)s) AS its
WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision = 'UNMERGED'

-- name: restored_enrolments
-- An unmerge gives back the enrolments its merge graduated as duplicates (the survivor was in the plan already): each
-- takes the status it had before, if its graduation is still its latest version. After the reviews: the database lets
-- only the unmerge of that pair undo its merge's graduation (migration 027).
INSERT INTO ledger.beneficiary_versions (beneficiary_id, version, plan_code, individual_id, household_code, status,
                                         attributes, reason, commit_id)
SELECT graduated.beneficiary_id, graduated.version + 1, graduated.plan_code, graduated.individual_id, NULL,
       before.status, graduated.attributes, 'unmerged: no longer a duplicate of individual ' || p.survivor_id,
       %(commit_id)s
FROM {proposal} p
JOIN LATERAL (
    SELECT r.commit_id FROM ledger.duplicate_reviews r
    WHERE r.candidate_id = p.candidate_id AND r.decision = 'CONFIRMED'
    ORDER BY r.version DESC LIMIT 1
) AS merge ON true
JOIN ledger.beneficiary_versions graduated
  ON graduated.commit_id = merge.commit_id AND graduated.individual_id = p.retired_id AND graduated.status = 'GRADUATED'
JOIN ledger.beneficiary_versions before
  ON before.beneficiary_id = graduated.beneficiary_id AND before.version = graduated.version - 1
WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision = 'UNMERGED'
  AND graduated.version = (SELECT max(v.version) FROM ledger.beneficiary_versions v
                           WHERE v.beneficiary_id = graduated.beneficiary_id)

-- name: latest_versions
-- The latest version of each record a merge or an unmerge of this review changes (temporary, dropped at commit).
CREATE TEMPORARY TABLE review_latest ON COMMIT DROP AS
SELECT DISTINCT ON (v.individual_id) v.*
FROM ledger.individual_versions v
WHERE v.individual_id IN (
    SELECT survivor_id FROM {proposal} WHERE request_id = %(request_id)s AND allowed AND decision <> 'DISMISSED'
    UNION SELECT retired_id FROM {proposal} WHERE request_id = %(request_id)s AND allowed AND decision <> 'DISMISSED')
ORDER BY v.individual_id, v.version DESC

-- name: retired_versions
-- The retired record's new version. A merge: merged into the survivor, out of its household. An unmerge: the
-- version it had before the merge (by version: commit ids are handed out before the registry's lock is taken),
-- household included.
INSERT INTO ledger.individual_versions (individual_id, version, commit_id, first_name, last_name, dob, sex, national_id,
                                        location_code, location_name, region, household_code, role, recipient_type,
                                        attributes, merged_into)
SELECT l.individual_id, l.version + 1, %(commit_id)s, b.first_name, b.last_name, b.dob, b.sex, b.national_id,
       b.location_code, b.location_name, b.region,
       CASE WHEN p.decision = 'UNMERGED' THEN b.household_code END,
       CASE WHEN p.decision = 'UNMERGED' THEN b.role END,
       CASE WHEN p.decision = 'UNMERGED' THEN b.recipient_type END,
       b.attributes,
       CASE WHEN p.decision = 'CONFIRMED' THEN p.survivor_id END
FROM {proposal} p
JOIN review_latest l ON l.individual_id = p.retired_id
JOIN LATERAL (
    SELECT v.* FROM ledger.individual_versions v
    WHERE v.individual_id = p.retired_id
      AND (p.decision = 'CONFIRMED' OR v.version < (
            SELECT m.version FROM ledger.individual_versions m
            JOIN ledger.duplicate_reviews r ON r.commit_id = m.commit_id
            WHERE m.individual_id = p.retired_id AND r.candidate_id = p.candidate_id AND r.decision = 'CONFIRMED'
            ORDER BY r.version DESC LIMIT 1))
    ORDER BY v.version DESC LIMIT 1
) AS b ON true
WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision <> 'DISMISSED'

-- name: survivor_versions
-- The survivor's new version, when its household place changes (the proposal's survivor_changes): a merge gives a
-- survivor without a household the retired record's place; an unmerge takes it back. Everything else as it is now.
INSERT INTO ledger.individual_versions (individual_id, version, commit_id, first_name, last_name, dob, sex, national_id,
                                        location_code, location_name, region, household_code, role, recipient_type,
                                        attributes)
SELECT l.individual_id, l.version + 1, %(commit_id)s, l.first_name, l.last_name, l.dob, l.sex, l.national_id,
       l.location_code, l.location_name, l.region,
       CASE WHEN p.decision = 'CONFIRMED' THEN retired.household_code END,
       CASE WHEN p.decision = 'CONFIRMED' THEN retired.role END,
       CASE WHEN p.decision = 'CONFIRMED' THEN retired.recipient_type END,
       l.attributes
FROM {proposal} p
JOIN review_latest l ON l.individual_id = p.survivor_id
JOIN review_latest retired ON retired.individual_id = p.retired_id
WHERE p.request_id = %(request_id)s AND p.allowed AND p.survivor_changes

-- name: review_enrolments
-- The enrolments of the records these merges and unmerges change, each as its latest version says, read once for all
-- pairs (temporary, dropped at commit): the versions have no index by person (one would slow every enrolment of a
-- million), so a look-up per pair would read them all once per pair.
CREATE TEMPORARY TABLE review_enrolments ON COMMIT DROP AS
SELECT DISTINCT ON (v.beneficiary_id) v.*
FROM ledger.beneficiary_versions v
WHERE v.beneficiary_id IN (
    SELECT w.beneficiary_id FROM ledger.beneficiary_versions w
    WHERE w.individual_id IN (SELECT individual_id FROM review_latest))
ORDER BY v.beneficiary_id, v.version DESC

-- name: beneficiaries
-- A merge moves the retired record's enrolments to the survivor, except in a plan the survivor is in already: there
-- the retired record's enrolment is graduated as a duplicate (a plan never has one person twice). An unmerge moves
-- back the enrolments its merge moved (restored_enrolments gives back those it graduated).
INSERT INTO ledger.beneficiary_versions (beneficiary_id, version, plan_code, individual_id, household_code, status,
                                         attributes, reason, commit_id)
SELECT latest.beneficiary_id, latest.version + 1, latest.plan_code,
       CASE WHEN survivor_enrolled THEN latest.individual_id ELSE moved_to END, NULL,
       CASE WHEN survivor_enrolled THEN 'GRADUATED' ELSE latest.status END,
       latest.attributes,
       CASE WHEN survivor_enrolled THEN 'duplicate: merged into individual ' || p.survivor_id
            WHEN p.decision = 'CONFIRMED' THEN 'merged duplicate: moved from individual ' || p.retired_id
            ELSE 'unmerged: moved back from individual ' || p.survivor_id END,
       %(commit_id)s
FROM {proposal} p
CROSS JOIN LATERAL (
    SELECT CASE p.decision WHEN 'CONFIRMED' THEN p.retired_id ELSE p.survivor_id END AS moved_from,
           CASE p.decision WHEN 'CONFIRMED' THEN p.survivor_id ELSE p.retired_id END AS moved_to
) AS move
JOIN review_enrolments latest ON latest.individual_id = move.moved_from AND latest.status <> 'GRADUATED'
CROSS JOIN LATERAL (
    SELECT p.decision = 'CONFIRMED' AND EXISTS (
        SELECT FROM review_enrolments s
        WHERE s.plan_code = latest.plan_code AND s.individual_id = p.survivor_id AND s.status <> 'GRADUATED'
    ) AS survivor_enrolled
) AS enrolled
WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision <> 'DISMISSED'
  -- an unmerge moves back only what its merge moved
  AND (p.decision = 'CONFIRMED' OR EXISTS (
        SELECT FROM ledger.beneficiary_versions m
        JOIN ledger.duplicate_reviews r ON r.commit_id = m.commit_id AND r.candidate_id = p.candidate_id
                                       AND r.decision = 'CONFIRMED'
        WHERE m.beneficiary_id = latest.beneficiary_id AND m.individual_id = p.survivor_id))

-- name: file_rows
-- A review file's rows: the pair each names (NULL if none), and the survivor it names.
FROM intake.{staged} s
LEFT JOIN registry.duplicate_candidates c
       ON c.candidate_id = CASE WHEN btrim(s.candidate_id) ~ '^[0-9]+$' AND length(btrim(s.candidate_id)) <= 18
                                THEN btrim(s.candidate_id)::bigint END

-- name: file_errors
-- Every row naming no pair of the status the decision needs, or a survivor not of its pair (upload, row, column,
-- rule, value, message).
SELECT {upload}, s.row_number, 'candidate_id', 'candidate_id:not_' || lower({status}), s.candidate_id,
       CASE WHEN c.candidate_id IS NULL THEN 'no duplicate pair with this candidate id'
            ELSE format('this pair is %s, not %s', c.status, {status}) END
{@file_rows}
WHERE c.status IS DISTINCT FROM {status}
UNION ALL
SELECT {upload}, s.row_number, 'survivor_id', 'survivor_id:not_in_pair', {survivor_text},
       'the survivor must be one of the pair''s two individual ids'
{@file_rows}
WHERE c.status = {status} AND nullif(btrim({survivor_text}), '') IS NOT NULL
  AND {survivor} IS DISTINCT FROM c.individual_a AND {survivor} IS DISTINCT FROM c.individual_b

-- name: file_selection
INSERT INTO intake.request_selection (request_id, candidate_id, individual_id, row_number)
SELECT DISTINCT ON (c.candidate_id) {request}, c.candidate_id, {survivor}, s.row_number
{@file_rows}
WHERE c.candidate_id IS NOT NULL
ORDER BY c.candidate_id, s.row_number
