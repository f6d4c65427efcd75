-- Every pair of people a duplicate search found alike, with where it stands: OPEN (not reviewed yet),
-- CONFIRMED (one person: merged), DISMISSED (two people), UNMERGED (merged, then found to be two people).
{{ config(indexes=[
    {'columns': ['candidate_id'], 'unique': True},
    {'columns': ['individual_a']},
    {'columns': ['individual_b']},
    {'columns': ['status', 'score']},
], materialized='incremental', unique_key='candidate_id', incremental_strategy='delete+insert',
   on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the pairs its new commits found or reviewed.

with candidates as (
    select * from {{ ref('stg_ledger__duplicate_candidates') }}
    {%- if is_incremental() %}
    where candidate_id in (
        {{ touched_by_new_commits(ref('stg_ledger__duplicate_candidates'), 'candidate_id') }}
        union
        {{ touched_by_new_commits(ref('stg_ledger__duplicate_reviews'), 'candidate_id') }}
    )
    {%- endif %}
),

latest_reviews as (
    select *
    from {{ ref('stg_ledger__duplicate_reviews') }}
    where is_latest and candidate_id in (select candidate_id from candidates)
),

searches as (
    select commit_id, scope, rules -> 'review_threshold' as review_threshold
    from {{ ref('stg_ledger__duplicate_searches') }}
)

select
    candidates.candidate_id,
    candidates.individual_a,
    candidates.version_a,
    candidates.individual_b,
    candidates.version_b,
    candidates.score,
    candidates.score >= (searches.review_threshold)::numeric as at_review_threshold,
    candidates.fields,
    candidates.rules_sha256,
    candidates.commit_id as found_by_commit,
    searches.scope as found_by_scope,
    candidates.recorded_at as found_at,
    coalesce(latest_reviews.decision, 'OPEN') as status,
    latest_reviews.survivor_id,
    latest_reviews.retired_id,
    latest_reviews.reason as review_reason,
    latest_reviews.recorded_at as reviewed_at,
    latest_reviews.commit_id as reviewed_by_commit
from candidates
join searches on searches.commit_id = candidates.commit_id
left join latest_reviews using (candidate_id)
