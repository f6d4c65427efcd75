-- Every person's key in each block of the duplicate search (matching.block_keys, migration 026; one column per
-- block, macros/duplicate_blocks.sql): a search compares two people only when they share a key. A person with no
-- key in a block (no phone) has null there. One row per person with a column per block, not a row per person and
-- block: at a million people 8 s to build instead of 19.
{%- set indexes = [{'columns': ['individual_id'], 'unique': True}] %}
{%- for block in duplicate_blocks() %}{% do indexes.append({'columns': [block]}) %}{% endfor %}
{{ config(indexes=indexes, materialized='incremental', unique_key='individual_id',
          incremental_strategy='delete+insert', on_schema_change='fail', pre_hook="{{ take_in_commits() }}", post_hook="{{ drop_merged_records() }}") }}
-- Incremental (macros/incremental_state.sql): a run recomputes the keys of the people its new commits gave a
-- version (a merged record's keys go: it is no longer in registry.individuals).
-- depends_on: {{ ref('stg_ledger__individual_versions') }}

select
    individual_id,
    version,
    last_commit_id,
    {%- for block in duplicate_blocks() %}
    keys[{{ loop.index }}] as {{ block }}{{ ',' if not loop.last }}
    {%- endfor %}
from (
    select
        individuals.individual_id,
        individuals.version,
        individuals.last_commit_id,
        matching.block_keys(
            individuals.first_name, individuals.last_name, individuals.dob, individuals.attributes ->> 'phone'
        ) as keys
    from {{ ref('individuals') }} as individuals
    {%- if is_incremental() %}
    where individuals.individual_id in (
        {{ touched_by_new_commits(ref('stg_ledger__individual_versions'), 'individual_id') }}
    )
    {%- endif %}
    -- keys computed once per person, not once per column
    offset 0  -- noqa: AM09
) as people
