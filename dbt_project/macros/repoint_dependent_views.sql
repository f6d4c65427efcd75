{#
  No view a dashboard or a script reads disappears while a publish runs.

  dbt swaps a rebuilt table (or view) in by renaming the old one to `<name>__dbt_backup` and the new
  one to `<name>`, commits, then drops the backup with CASCADE: the views over the old relation go
  with it, and stay missing until dbt re-creates them later in the run (if it does). Here, inside
  the swap's transaction, the views over the old relation are replaced by the same views over the
  new one (`repoint_dependent_views`, a post-hook of every published model), so the backup is
  dropped alone.

  Lock order: a reader of a view locks the view, then what it reads; the swap locks the views over
  the relation first (before the rename), then the relation, so the two never wait for each other
  in a circle. LOCK TABLE is not used on the views: it would also lock, recursively, every relation
  they read (the ledger included). dbt swaps several models at once (threads): the swaps take turns
  from their first view lock to their commit (a transaction-level advisory lock), so no swap reads
  a view's definition while another is changing what it reads.

  A view whose columns no longer fit the rebuilt relation (a changed model, deployed with
  `dbt build`) is left to the CASCADE and rebuilt by that same build, as before.
#}

{% macro postgres__rename_relation(from_relation, to_relation) -%}
    {%- if to_relation.identifier == from_relation.identifier ~ '__dbt_backup' -%}
        {% call statement('lock_dependent_views') -%}
            {{ replace_dependent_views(from_relation.schema, from_relation.identifier, from_relation.identifier,
                                       take_turns=true) }}
        {%- endcall %}
        {#- IF EXISTS: a view whose re-pointing failed went with the CASCADE, which dbt does not know (below). -#}
        {% call statement('rename_relation') -%}
            alter table if exists {{ from_relation.render() }} rename to {{ adapter.quote(to_relation.identifier) }}
        {%- endcall %}
    {%- else -%}
        {{ default__rename_relation(from_relation, to_relation) }}
    {%- endif -%}
{%- endmacro %}


{#- dbt links, in its relation cache, each view to what it reads, to forget the views a dropped relation
    takes with it (CASCADE). Here a swap re-points those views instead: they outlive the backup, and
    dbt must not forget them (it would then create the view anew under a name that is taken). -#}
{% macro postgres__get_relations() -%}
    {%- call statement('relations', fetch_result=True) -%}
        select
            null::name as dependent_schema,
            null::name as dependent_name,
            null::name as referenced_schema,
            null::name as referenced_name
        where false
    {%- endcall -%}
    {{ return(load_result('relations').table) }}
{% endmacro %}


{% macro repoint_dependent_views() %}
    {{ replace_dependent_views(this.schema, this.identifier ~ '__dbt_backup', this.identifier) }}
{% endmacro %}


{#- Re-create each view over `schema.relation` with `relation` read as `instead` (the same name: only
    to take the view's lock), in a stable order; `take_turns`: first wait for any other swap to commit. -#}
{% macro replace_dependent_views(schema, relation, instead, take_turns=false) %}
    do $replace$
    declare
        relation regclass := to_regclass({{ dbt.string_literal(adapter.quote(schema) ~ '.' ~ adapter.quote(relation)) }});
        dependent record;
    begin
        {% if take_turns -%}
        perform pg_advisory_xact_lock(hashtext('benefitflow.swap'));
        {%- endif %}
        if relation is null then
            return;  -- the model's first build: nothing reads it yet
        end if;
        for dependent in
            select distinct views.oid, views.oid::regclass as name, pg_get_viewdef(views.oid) as definition
            from pg_depend as dependencies
            join pg_rewrite as rules on rules.oid = dependencies.objid
            join pg_class as views on views.oid = rules.ev_class
            where dependencies.classid = 'pg_rewrite'::regclass
                and dependencies.refobjid = relation
                and views.relkind = 'v'
                and views.oid <> relation
            order by views.oid
        loop
            begin
                execute format('create or replace view %s as %s', dependent.name,
                               regexp_replace(dependent.definition, {{ dbt.string_literal('\\m' ~ relation ~ '\\M') }},
                                              {{ dbt.string_literal(instead) }}, 'g'));
            exception when others then
                raise warning 'view % is left to be rebuilt: %', dependent.name, sqlerrm;
            end;
        end loop;
    end
    $replace$
{% endmacro %}
