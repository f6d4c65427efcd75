{#- State grows by the change, not by the registry (migration 012_incremental_state.sql says why a set).

    An incremental state model:
      {{ config(materialized='incremental', unique_key=..., pre_hook="{{ take_in_commits() }}") }}
      ... where key in ({{ touched_by_new_commits(ref('stg_ledger__...'), 'key') }}) ...
    Its run first takes in the commits it has not taken in yet (pre-hook), then rebuilds the entities
    those commits touched, from their whole history; a full refresh rebuilds all.

    The commits a run takes in and the ledger rows it reads are the same: a commit landing while it runs
    is in neither. Models that add their new commits' rows to the totals they hold (payment cycles,
    payrolls) rely on it: a row read but not taken in would be added again next time.
    - An incremental run is one REPEATABLE READ transaction. (The SET must come first in the transaction,
      which dbt opens with the pre-hook; the pre-hook checks it took effect, so a change in how dbt opens
      transactions fails the run, loudly.)
    - A whole rebuild swaps tables, and its catalog look-ups must see views as they are now, which a
      repeatable-read snapshot does not: it holds off commits instead until its transaction ends
      (publishing.hold_off_commits, migration 012: a commit's first insert waits, whole rebuilds do not
      wait for each other).

    A model that reads other incremental models takes in only the commits every one of them has already
    taken in, so it never marks a commit done that its inputs do not show yet. -#}

{% macro state_model_name() -%}
    {{ this.schema }}.{{ this.identifier }}
{%- endmacro %}


{#- repeatable_read=false only for a model whose compilation queries the database (that opens the transaction
    before the pre-hook), which nothing adds up from, and which recomputes what it touches: reading a commit
    it has not taken in then only means rebuilding those rows again next time. -#}
{% macro take_in_commits(repeatable_read=true) -%}
    {%- set model_name = state_model_name() -%}
    {%- if not is_incremental() %}
    select publishing.hold_off_commits();
    {%- elif repeatable_read %}
    set transaction isolation level repeatable read;
    do $$ begin
        if current_setting('transaction_isolation') <> 'repeatable read' then
            raise exception '{{ model_name }}: its run is not one repeatable-read transaction (how dbt opens it changed?)';
        end if;
    end $$;
    {%- endif %}
    select set_config('benefitflow.take_in', nextval('publishing.take_ins')::text, true);
    insert into publishing.taken_in_commits (model, commit_id, take_in)
    select '{{ model_name }}', commits.commit_id, current_setting('benefitflow.take_in')::bigint
    from ledger.commits as commits
    where not exists (
        select from publishing.taken_in_commits as taken
        where taken.model = '{{ model_name }}' and taken.commit_id = commits.commit_id
    )
    {%- for parent in incremental_parents(model.unique_id) %}
    and exists (
        select from publishing.taken_in_commits as taken
        where taken.model = '{{ parent }}' and taken.commit_id = commits.commit_id
    )
    {%- endfor %}
{%- endmacro %}


{#- Second pre-hook of a model that adds its new commits' rows to the totals it holds: refuse to add anything
    to a table with no record of the commits it took in (a table from before migration 012, restored, or
    whose record was emptied): every commit would be counted again on top of it. -#}
{% macro require_record_of_taken_in_commits() -%}
    {%- if is_incremental() %}
    do $$ begin
        if exists (select from {{ this }})
            and publishing.previous_take_in_at('{{ state_model_name() }}') = '-infinity' then
            raise exception '{{ state_model_name() }} holds totals but no record of the commits they count: '
                'rebuild it whole (make rebuild)';
        end if;
    end $$;
    {%- endif %}
{%- endmacro %}


{#- The commits this run takes in, as an array (migration 013 says why a function: so the planner sees which). -#}
{% macro new_commits() -%}
    publishing.commits_taken_in('{{ state_model_name() }}')
{%- endmacro %}


{#- The keys a ledger table's rows of the new commits name (the table needs an index on commit_id). -#}
{% macro touched_by_new_commits(ledger_relation, key) -%}
    select {{ key }} from {{ ledger_relation }} where commit_id = any({{ new_commits() }})
{%- endmacro %}


{#- The nearest incremental models this model reads, through views: they must have taken a commit in first. -#}
{% macro incremental_parents(node_id) %}
    {%- set found = [] %}
    {%- if not execute %}{{ return(found) }}{% endif %}
    {%- for parent_id in graph.nodes[node_id].depends_on.nodes if parent_id in graph.nodes %}
        {%- set parent = graph.nodes[parent_id] %}
        {%- if parent.config.materialized == 'incremental' and 'propose' not in parent.tags %}
            {%- do found.append(parent.schema ~ '.' ~ parent.alias) %}
        {%- elif parent.config.materialized == 'view' %}
            {%- do found.extend(incremental_parents(parent_id)) %}
        {%- endif %}
    {%- endfor %}
    {{- return(found | unique | list) }}
{% endmacro %}


{#- The households whose members or head may have changed with the new commits: created, joined, or left
    (an individual's previous version names the household it left). -#}
{% macro households_touched_by_new_commits() -%}
    {{ touched_by_new_commits(ref('stg_ledger__households'), 'household_code') }}
    union
    select changed.household_code
    from {{ ref('stg_ledger__individual_versions') }} as changed
    where changed.commit_id = any({{ new_commits() }}) and changed.household_code is not null
    union
    select previous.household_code
    from {{ ref('stg_ledger__individual_versions') }} as changed
    join {{ ref('stg_ledger__individual_versions') }} as previous
        on previous.individual_id = changed.individual_id and previous.version = changed.version - 1
    where changed.commit_id = any({{ new_commits() }}) and previous.household_code is not null
{%- endmacro %}


{#- The bills the new commits created, settled, failed, released or put in a payroll; and, after a merge or an unmerge
    of duplicate records, those whom it may make pay another person: of the enrolments a review ever moved, of
    the records ever merged, and paid to them (few: ledger.moved_enrolments, migration 027). Models using it declare
    -- depends_on: {{ ref('stg_ledger__duplicate_reviews') }} -#}
{% macro bills_touched_by_new_commits() -%}
    {{ touched_by_new_commits(ref('stg_ledger__bills'), 'bill_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__bill_events'), 'bill_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__payroll_bills'), 'bill_id') }}
    union
    select payees.bill_id
    from {{ ref('stg_ledger__bills') }} as payees
    where exists (
        select from {{ ref('stg_ledger__duplicate_reviews') }} as reviews
        where reviews.commit_id = any({{ new_commits() }}) and reviews.decision <> 'DISMISSED'
    )
    and (
        payees.beneficiary_id in (select moved.beneficiary_id from ledger.moved_enrolments() as moved)
        or payees.individual_id in (
            select confirmed.retired_id from {{ ref('stg_ledger__duplicate_reviews') }} as confirmed
            where confirmed.decision = 'CONFIRMED'
        )
        -- a bill a payroll paid to a record merged since (a household's too)
        or payees.bill_id in (
            select paid.bill_id from {{ ref('stg_ledger__payroll_bills') }} as paid
            where paid.recipient_id in (
                select confirmed.retired_id from {{ ref('stg_ledger__duplicate_reviews') }} as confirmed
                where confirmed.decision = 'CONFIRMED'
            )
        )
    )
{%- endmacro %}


{#- Whether this model's table has a column for each of these registry variables already (else every row is
    rebuilt: sync_all_columns adds the new column, and every row must get its value). -#}
{% macro variables_are_columns(variables) -%}
    {%- if not execute %}{{ return(false) }}{% endif %}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
    {{- return(variables | map(attribute='name') | reject('in', existing) | list | length == 0) }}
{%- endmacro %}


{#- Post-hook of a model keyed by individual_id over registry.individuals: a run's delete+insert replaces the rows of
    the people its new commits touched, so a record those commits merged into another (no longer in the registry's
    current state) would keep its old row; this removes it. -#}
{% macro drop_merged_records() -%}
    {%- if is_incremental() %}
    delete from {{ this }} as current
    where current.individual_id in (
        select merged.individual_id from {{ ref('stg_ledger__individual_versions') }} as merged
        where merged.commit_id = any({{ new_commits() }}) and merged.merged_into is not null
    )
    and (
        select latest.merged_into from {{ ref('stg_ledger__individual_versions') }} as latest
        where latest.individual_id = current.individual_id
        order by latest.version desc limit 1
    ) is not null
    {%- endif %}
{%- endmacro %}
