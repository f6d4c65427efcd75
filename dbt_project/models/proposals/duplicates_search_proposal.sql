{#- The pairs of people a duplicate search would keep: the people of the registry commits the request searches
    (matching.commits_to_search: all of them, or those no earlier search covered), each compared
    with everyone sharing a block key (registry.duplicate_keys) under the request's rules, kept when
    matching.is_candidate says so, and not already known: a pair open or merged, or dismissed (or unmerged)
    at the versions compared now, is not proposed again. Run value: request_id. -#}
{#- Memory: each block's joins and counts keep their hash tables until the query ends, seven blocks at once; at the
    server's work_mem a search of a million people peaked at 2.3 GB. At 16 MB each spills to disk instead. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}], pre_hook="set local work_mem = '16MB'") }}
{%- set request_id = run_value('request_id') %}
{%- set request_literal = request_id | int if request_id is not none else 'null' %}

with request as (
    select
        request_id,
        document -> 'rules' as rules,
        document ->> 'rules_sha256' as rules_sha256,
        (document -> 'rules' ->> 'max_block_size')::int as max_block_size
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_literal }}
),

searched_commits as (
    select searched.commit_id
    from {{ ref('stg_intake__requests') }} as requests
    cross join lateral matching.commits_to_search(
        requests.document ->> 'scope', (requests.document ->> 'taken_in_up_to')::bigint
    ) as searched
    where requests.request_id = {{ request_literal }}
),

examined as materialized (
    select keys.*
    from {{ ref('duplicate_keys') }} as keys
    where keys.last_commit_id in (select searched_commits.commit_id from searched_commits)
),

-- For each block the rules use, the people examined with everyone sharing their key. A key more people share than
-- the rules allow (a phone a whole village uses) compares nobody, and is left out before the join: its pairs
-- would grow with the square of its size.
pairs as (
    select distinct
        least(shared.examined_id, shared.other_id) as individual_a,
        greatest(shared.examined_id, shared.other_id) as individual_b
    from (
        {%- for block in duplicate_blocks() %}
        select examined.individual_id as examined_id, others.individual_id as other_id
        from examined
        inner join {{ ref('duplicate_keys') }} as others on others.{{ block }} = examined.{{ block }}
        where '{{ block }}' in (select jsonb_array_elements_text(request.rules -> 'blocks') from request)
            and examined.{{ block }} in (
                select sized.{{ block }}
                from {{ ref('duplicate_keys') }} as sized
                where sized.{{ block }} in (select examined.{{ block }} from examined)
                group by sized.{{ block }}
                having count(*) <= (select request.max_block_size from request)
            )
        {{ 'union all' if not loop.last }}
        {%- endfor %}
    ) as shared
    where shared.examined_id <> shared.other_id
),

scored as (
    select
        pairs.individual_a,
        a.version as version_a,
        pairs.individual_b,
        b.version as version_b,
        likeness.score,
        likeness.fields
    from pairs
    join {{ ref('individuals') }} as a on a.individual_id = pairs.individual_a
    join {{ ref('individuals') }} as b on b.individual_id = pairs.individual_b
    cross join request
    cross join lateral matching.likeness({{ matching_person('a') }}, {{ matching_person('b') }}, request.rules)
        as likeness
    where matching.is_candidate(likeness, request.rules)
),

-- What reviewers and earlier searches already said of a pair: its latest finding, and that finding's latest review.
known as (
    select distinct on (candidates.individual_a, candidates.individual_b)
        candidates.individual_a,
        candidates.individual_b,
        reviews.decision,
        reviews.version_a,
        reviews.version_b
    from {{ ref('stg_ledger__duplicate_candidates') }} as candidates
    left join {{ ref('stg_ledger__duplicate_reviews') }} as reviews
        on reviews.candidate_id = candidates.candidate_id and reviews.is_latest
    where (candidates.individual_a, candidates.individual_b) in (select individual_a, individual_b from scored)
    order by candidates.individual_a, candidates.individual_b, candidates.candidate_id desc
)

select
    request.request_id,
    scored.individual_a,
    scored.version_a,
    scored.individual_b,
    scored.version_b,
    scored.score,
    scored.fields,
    request.rules_sha256
from scored
cross join request
left join known using (individual_a, individual_b)
where known.individual_a is null
    or (known.decision in ('DISMISSED', 'UNMERGED')
        and (known.version_a, known.version_b) is distinct from (scored.version_a, scored.version_b))
