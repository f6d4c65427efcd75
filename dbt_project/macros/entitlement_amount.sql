{#- The amount a plan's entitlement rule gives one beneficiary for one cycle, exact to the cent:
    fixed_amount + per_member.amount × min(counted members, max_members) + the matching top-ups,
    capped at `cap`, rounded half-up to 2 decimals. `document` is the plan document (jsonb),
    `counted_members` the members the per-member criteria count, `top_ups` a jsonb array of the 0-based positions of
    the top-ups whose criteria match (both computed by the criteria compiler, never here). -#}
{% macro entitlement_amount(document, counted_members, top_ups) -%}
round(least(
    coalesce(({{ document }} #>> '{entitlement,fixed_amount}')::numeric, 0)
    + coalesce(({{ document }} #>> '{entitlement,per_member,amount}')::numeric, 0)
        * least(coalesce({{ counted_members }}, 0),
                coalesce(({{ document }} #>> '{entitlement,per_member,max_members}')::integer, {{ counted_members }}, 0))
    + coalesce((
        select sum((top_up.rule ->> 'amount')::numeric)
        from jsonb_array_elements({{ document }} #> '{entitlement,top_ups}') with ordinality as top_up (rule, position)
        where {{ top_ups }} @> to_jsonb((top_up.position - 1)::integer)
    ), 0),
    coalesce(({{ document }} #>> '{entitlement,cap}')::numeric, 'Infinity'::numeric)
), 2)
{%- endmacro %}
