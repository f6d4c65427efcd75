{#
  No view a dashboard or a script reads disappears while a publish runs.

  dbt swaps a rebuilt table (or view) in by renaming the old one to its backup name and the new one
  to the model's name, commits, then drops the backup with CASCADE: the views over the old relation
  go with it, and stay missing until dbt re-creates them later in the run (if it does). Here, inside
  the swap's transaction, the views over the old relation are re-created from their own text,
  which names the model, so after the swap they read the new relation; the backup is dropped alone.

  1. Before the old relation is renamed (`move_aside`): the swaps take turns (an advisory lock
     held to the commit); the definitions of the views over the relation are kept for the
     transaction (a local setting); each view is re-created as it is, only to take its lock, then
     the relation is renamed. Readers lock a view before what it reads, but a reader may also hold
     a table and then want a view over it (one statement over a table and a view, a transaction
     reading both): so the locks are taken with a lock timeout shorter than PostgreSQL's deadlock
     check and, on a timeout, given back and taken again a moment later, so a swap never waits in
     a circle with a reader (and never makes one fail). LOCK TABLE is not used on the views: it would
     also lock, recursively, every relation they read (the ledger included).
  2. After the new relation took the model's name (`repoint_views`): the kept definitions are
     executed again. A view whose columns no longer fit (a changed model, deployed with `dbt build`)
     is left to the CASCADE and rebuilt by that same build; any other error fails the swap, which
     then changes nothing.
#}

{% macro postgres__rename_relation(from_relation, to_relation) -%}
    {%- if to_relation.identifier == make_backup_relation(from_relation, from_relation.type).identifier -%}
        {% call statement('move_aside') -%}
            {{ move_aside(from_relation, to_relation) }}
        {%- endcall %}
    {%- else -%}
        {{ default__rename_relation(from_relation, to_relation) }}
        {% call statement('repoint_views') -%}
            {{ repoint_views() }}
        {%- endcall %}
    {%- endif -%}
{%- endmacro %}


{% macro move_aside(relation, backup) %}
    do $move_aside$
    declare
        moved regclass := to_regclass({{ dbt.string_literal(relation.render()) }});
        saved_lock_timeout text := current_setting('lock_timeout');
        kept jsonb;
        dependent record;
        attempts integer := 0;
    begin
        -- Swaps take turns, however long the one before waits for its readers: the publish's lock_timeout
        -- (dbt_runner) is for locks readers hold, not for this turn.
        perform set_config('lock_timeout', '0', true);
        perform pg_advisory_xact_lock(hashtext('benefitflow.swap'));
        perform set_config('lock_timeout', saved_lock_timeout, true);
        -- The relation may be gone (a view dropped by an earlier CASCADE, which dbt's cache missed).
        if moved is null then
            return;
        end if;
        loop
            begin
                -- Short tries first (readers never queue behind them); after about a minute of readers
                -- overlapping, one try that queues until the reader in the way is cancelled at its
                -- statement_timeout (benefitflow.platform.readers): a publish is delayed, never starved.
                perform set_config('lock_timeout', case when attempts < {{ short_swap_attempts() }} then '100ms'
                                                        else '{{ reader_statement_timeout() + 5 }}s' end, true);
                select coalesce(jsonb_agg(jsonb_build_object('view_name', found.name, 'definition', found.definition)
                                          order by found.oid), '[]'::jsonb)
                into kept
                from (
                    select distinct views.oid, views.oid::regclass::text as name, pg_get_viewdef(views.oid) as definition
                    from pg_depend as dependencies
                    join pg_rewrite as rules on rules.oid = dependencies.objid
                    join pg_class as views on views.oid = rules.ev_class
                    where dependencies.classid = 'pg_rewrite'::regclass
                        and dependencies.refobjid = moved
                        and views.relkind = 'v'
                        and views.oid <> moved
                ) as found;
                for dependent in
                    select * from jsonb_to_recordset(kept) as views_over_it(view_name text, definition text)
                loop
                    execute format('create or replace view %s as %s', dependent.view_name, dependent.definition);
                end loop;
                execute format('alter table %s rename to %I', moved, {{ dbt.string_literal(backup.identifier) }});
                exit;
            exception when lock_not_available then
                -- A reader holds what this swap needs and may want what it holds: give it all back.
                attempts := attempts + 1;
                if attempts > {{ short_swap_attempts() }} then
                    raise;
                end if;
                perform pg_sleep(0.05 + random() * 0.1);
            end;
        end loop;
        perform set_config('lock_timeout', saved_lock_timeout, true);
        perform set_config('benefitflow.views_to_repoint', kept::text, true);
    end
    $move_aside$
{% endmacro %}


{% macro repoint_views() %}
    do $repoint$
    declare
        dependent record;
    begin
        for dependent in
            select * from jsonb_to_recordset(coalesce(nullif(current_setting('benefitflow.views_to_repoint', true), ''),
                                                      '[]')::jsonb) as kept(view_name text, definition text)
        loop
            begin
                execute format('create or replace view %s as %s', dependent.view_name, dependent.definition);
            exception when invalid_table_definition or datatype_mismatch or undefined_column then
                raise warning 'view % no longer fits what it reads and is left to be rebuilt: %', dependent.view_name,
                    sqlerrm;
            end;
        end loop;
        perform set_config('benefitflow.views_to_repoint', '', true);
    end
    $repoint$
{% endmacro %}


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


{% macro short_swap_attempts() %}{{ return(300) }}{% endmacro %}

{#- Seconds a reader's statement may run: the platform's setting (benefitflow.platform.readers). -#}
{% macro reader_statement_timeout() %}
    {{- return(env_var('BENEFITFLOW_READER_STATEMENT_TIMEOUT', '60') | int) -}}
{% endmacro %}
