-- Duplicate pairs for M&E: score band, status, region, when found and reviewed, which fields were alike. No
-- names, no ids of people (the individual record shows a person's pairs to those who may see them).
{{ config(materialized='view') }}

select
    candidates.candidate_id,
    candidates.score,
    case
        when candidates.score >= 0.95 then '0.95 – 1'
        when candidates.score >= 0.85 then '0.85 – 0.95'
        when candidates.score >= 0.70 then '0.70 – 0.85'
        else 'below 0.70'
    end as score_band,
    candidates.at_review_threshold,
    candidates.status,
    candidates.status = 'OPEN' as is_open,
    coalesce(a.region, b.region) as region,
    candidates.found_by_scope,
    candidates.found_at::date as found_on,
    date_trunc('week', candidates.found_at)::date as found_week,
    candidates.reviewed_at::date as reviewed_on,
    date_trunc('week', candidates.reviewed_at)::date as reviewed_week,
    (coalesce(candidates.reviewed_at::date, current_date) - candidates.found_at::date) as days_open,
    (
        select string_agg(alike.field, ', ' order by alike.field)
        from jsonb_each_text(candidates.fields) as alike (field, likeness)
        where alike.likeness::numeric >= 0.8
    ) as fields_alike
from {{ ref('duplicate_candidates') }} as candidates
left join {{ ref('individuals') }} as a on a.individual_id = candidates.individual_a
left join {{ ref('individuals') }} as b on b.individual_id = candidates.individual_b
-- Readers see the pairs of their regions only (a view: no row-level security of its own).
where {{ readable_region('coalesce(a.region, b.region)') }}
