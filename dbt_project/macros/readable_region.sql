{#
  Regional managers see their regions, enforced by PostgreSQL (superset/regions.json, benefitflow.platform.readers).

  readable_region(column): true for the rows the querying login may see, from access.mart_readers keyed on
  current_user (a reader cannot become another role; no setting is trusted). Both sub-selects are uncorrelated:
  evaluated once per query, not per row. A login without a row sees nothing (fail closed); rows without a region
  only the all-regions logins.

  protect_regional_mart(): the marts' post-hook. A table with a region column gets row-level security and the
  readers' policy inside the transaction that builds (or swaps in) it, so no reader ever sees it unprotected, and
  every rebuild, full refresh included, keeps it; an incremental run finding both in place changes nothing (an
  ALTER would take an exclusive lock behind dashboard queries). The table's owner (benefitflow_app, dbt) is not
  subject to it, readers are never owners. A view with a region column must filter with readable_region itself
  (policies do not apply to views): the hook fails the build when it does not.
#}

{% macro readable_region(column) -%}
    ({{ column }} in (
        select unnest(readers.regions) from access.mart_readers as readers where readers.login = current_user
    ) or exists (
        select 1 from access.mart_readers as readers where readers.login = current_user and readers.all_regions
    ))
{%- endmacro %}

{% macro protect_regional_mart() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {%- if 'region' not in columns -%}{{ return('') }}{%- endif -%}
    {%- set state = run_query(
        "select c.relkind::text, c.relrowsecurity, exists (select 1 from pg_policy as p where p.polrelid = c.oid"
        ~ " and p.polname = 'readers_by_region'), c.relkind = 'v' and pg_get_viewdef(c.oid) ~ 'access\\.mart_readers'"
        ~ " from pg_class as c where c.oid = to_regclass(" ~ dbt.string_literal(this.schema ~ '.' ~ this.identifier) ~ ")"
    ).rows[0] -%}
    {%- if state[0] == 'v' -%}
        {%- if not state[3] -%}
            {{ exceptions.raise_compiler_error(this ~ " has a region column: filter it with readable_region()") }}
        {%- endif -%}
        {{ return('') }}
    {%- endif -%}
    {%- if state[1] and state[2] -%}{{ return('') }}{%- endif -%}
    alter table {{ this }} enable row level security;
    drop policy if exists readers_by_region on {{ this }};
    create policy readers_by_region on {{ this }} for select using ({{ readable_region('region') }});
{% endmacro %}
