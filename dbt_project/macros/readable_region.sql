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
  (policies do not apply to views): the hook fails the build when it does not, and makes the view a security
  barrier (else a reader's condition, say a cast that fails, could run on other regions' rows first and show
  their values in its error). The readers are granted SELECT once the relation is protected.
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
    {#- One catalog query (information_schema, which dbt's column listing reads, costs tens of milliseconds on
        every publish of every mart): does it have a region, and is it protected. -#}
    {%- set state = run_query(
        "select c.relkind::text, c.relrowsecurity, exists (select 1 from pg_policy as p where p.polrelid = c.oid"
        ~ " and p.polname = 'readers_by_region'), c.relkind = 'v' and exists (select 1 from pg_depend as d"
        ~ " join pg_rewrite as r on r.oid = d.objid where d.classid = 'pg_rewrite'::regclass and r.ev_class = c.oid"
        ~ " and d.refobjid = 'access.mart_readers'::regclass), coalesce(c.reloptions @> '{security_barrier=true}', false)"
        ~ ", exists (select 1 from pg_attribute as a where a.attrelid = c.oid and a.attname = 'region'"
        ~ " and not a.attisdropped)"
        ~ " from pg_class as c where c.oid = to_regclass(" ~ dbt.string_literal(this.schema ~ '.' ~ this.identifier) ~ ")"
    ).rows[0] -%}
    {%- if not state[5] -%}{{ return('') }}{%- endif -%}
    {%- if state[0] == 'v' -%}
        {%- if not state[3] -%}
            {{ exceptions.raise_compiler_error(this ~ " has a region column: filter it with readable_region()") }}
        {%- endif -%}
        {#- A security barrier: a reader's own conditions (a cast that fails, a function that raises) are
            evaluated only on the rows the region filter let through, never on other regions' rows. -#}
        {%- if not state[4] %}
    alter view {{ this }} set (security_barrier = true);
    {{ grant_to_mart_readers() }}
        {%- endif %}
    {%- elif not (state[1] and state[2]) %}
    alter table {{ this }} enable row level security;
    drop policy if exists readers_by_region on {{ this }};
    create policy readers_by_region on {{ this }} for select using ({{ readable_region('region') }});
    {{ grant_to_mart_readers() }}
    {%- endif %}
{% endmacro %}

{#- Readers may select a regional mart once it is protected (benefitflow.platform.readers.grant_marts
    revokes it from an unprotected one): granted here, in the transaction that protects it. -#}
{% macro grant_to_mart_readers() %}
    do $grant$
    declare
        reader name;
    begin
        for reader in
            select login from access.mart_readers
            where login not in ('benefitflow_app', 'benefitflow_owner')
                and exists (select 1 from pg_roles where rolname = login)
        loop
            execute format('grant select on %s to %I', {{ dbt.string_literal(this.render()) }}, reader);
        end loop;
    end
    $grant$;
{% endmacro %}
