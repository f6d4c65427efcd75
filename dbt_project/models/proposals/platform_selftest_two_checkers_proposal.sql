{#- What committing the platform_selftest_two_checkers upload would append (macro selftest_proposal).
    Rebuilt per upload (delete+insert on upload_id). -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='upload_id',
          indexes=[{'columns': ['upload_id']}]) }}

{{ selftest_proposal() }}
