#!/usr/bin/env bash
# Databases and least-privilege users of the benefitflow compose deployment.
#
# Run by the postgres image's entrypoint (mounted into /docker-entrypoint-initdb.d/), once,
# when the data volume is empty. It is idempotent, so it can also be re-run by hand to
# apply changed passwords:
#   docker compose --env-file deploy/compose.env exec postgres \
#     bash /docker-entrypoint-initdb.d/10-benefitflow.sh
#
# Mirrors benefitflow_dev.postgres.provision() (the one-machine installation):
#   airflow            owns database airflow      (Airflow metadata + Celery results)
#   superset           owns database superset     (Superset metadata)
#   benefitflow_owner  owns database benefitflow  (schemas, ledger, migrations)
#   benefitflow_app    may connect to benefitflow (DAG tasks, dbt; grants come with the schemas)
#   superset_reader    may connect to benefitflow (Superset; SELECT on marts only, every region)
#   superset_region_*, superset_no_region
#                      Superset's per-region logins (superset/regions.json, mounted as
#                      /etc/benefitflow/regions.json): passwords derived from BENEFITFLOW_READER_LOGINS_KEY
#                      as superset_config.py derives them; which regions each sees is set by airflow-init
#                      (benefitflow.platform.readers.grant_marts) once the schema exists.
# Mirrors benefitflow.platform.readers.secure_logins: readers get a statement timeout and lose EXECUTE on
# functions that read other tables or files, sleep, change settings or take advisory locks.
set -euo pipefail

for name in POSTGRES_USER AIRFLOW_DB_PASSWORD SUPERSET_DB_PASSWORD BENEFITFLOW_OWNER_PASSWORD \
            BENEFITFLOW_APP_PASSWORD BENEFITFLOW_READER_PASSWORD AIRFLOW_READER_DB_PASSWORD \
            BENEFITFLOW_READER_LOGINS_KEY; do
    value="${!name:-}"
    if [[ -z "$value" || "$value" == CHANGE_ME* ]]; then
        echo "postgres-init: $name is empty or still a placeholder (see deploy/compose.env.example)" >&2
        exit 1
    fi
done

run_psql() {
    # Passwords travel as psql variables and are quoted by psql (:'name'), never pasted.
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" "$@" \
        --set airflow_pw="$AIRFLOW_DB_PASSWORD" \
        --set superset_pw="$SUPERSET_DB_PASSWORD" \
        --set owner_pw="$BENEFITFLOW_OWNER_PASSWORD" \
        --set app_pw="$BENEFITFLOW_APP_PASSWORD" \
        --set reader_pw="$BENEFITFLOW_READER_PASSWORD" \
        --set airflow_reader_pw="$AIRFLOW_READER_DB_PASSWORD" \
        --set registry_api_pw="$BENEFITFLOW_REGISTRY_API_PASSWORD" \
        --set readers_key="$BENEFITFLOW_READER_LOGINS_KEY" \
        --set regions="$(cat "${BENEFITFLOW_REGIONS_FILE:-/etc/benefitflow/regions.json}")" \
        --set reader_timeout="${BENEFITFLOW_READER_STATEMENT_TIMEOUT:-60}s"
}

run_psql --dbname postgres <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', r)
  FROM unnest(ARRAY['airflow', 'airflow_reader', 'superset', 'benefitflow_owner', 'benefitflow_app', 'superset_reader',
                    'benefitflow_registry_api']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec
ALTER ROLE airflow           LOGIN PASSWORD :'airflow_pw';
ALTER ROLE superset          LOGIN PASSWORD :'superset_pw';
ALTER ROLE benefitflow_owner LOGIN PASSWORD :'owner_pw';
ALTER ROLE benefitflow_app   LOGIN PASSWORD :'app_pw';
ALTER ROLE superset_reader   LOGIN PASSWORD :'reader_pw';
ALTER ROLE airflow_reader    LOGIN PASSWORD :'airflow_reader_pw';
ALTER ROLE benefitflow_registry_api LOGIN PASSWORD :'registry_api_pw';
ALTER ROLE benefitflow_registry_api SET statement_timeout = '10s';

SELECT format('CREATE DATABASE %I OWNER %I', d.name, d.owner)
  FROM (VALUES ('airflow', 'airflow'), ('superset', 'superset'), ('benefitflow', 'benefitflow_owner'))
       AS d(name, owner)
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d.name)
\gexec
SQL

run_psql --dbname benefitflow <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_trgm;
REVOKE ALL ON DATABASE benefitflow FROM PUBLIC;
GRANT CONNECT ON DATABASE benefitflow TO benefitflow_app, superset_reader;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT TEMPORARY ON DATABASE benefitflow TO benefitflow_app;
GRANT benefitflow_app TO benefitflow_owner;
SQL

run_psql --dbname benefitflow <<'SQL'
-- Superset's per-region logins and the no-region login (superset/regions.json); superset_reader is all regions.
CREATE TEMPORARY TABLE reader_logins AS
SELECT :'regions'::json -> 'no_region' ->> 'login' AS login
UNION ALL
SELECT entry ->> 'login' FROM json_array_elements(:'regions'::json -> 'regional') AS entry;
SELECT format('CREATE ROLE %I LOGIN', login) FROM reader_logins
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login)
\gexec
SELECT format('ALTER ROLE %I LOGIN NOINHERIT PASSWORD %L', login,
              encode(sha256(convert_to(:'readers_key' || ':' || login, 'UTF8')), 'hex'))
  FROM reader_logins
\gexec
SELECT format('GRANT CONNECT ON DATABASE benefitflow TO %I', login) FROM reader_logins
\gexec
SELECT format('ALTER ROLE %I SET %I = %L', login, setting, :'reader_timeout')
  FROM (SELECT login FROM reader_logins UNION ALL SELECT 'superset_reader') AS readers,
       unnest(ARRAY['statement_timeout', 'idle_in_transaction_session_timeout']) AS setting
\gexec
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure)
  FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE (n.nspname = 'pg_catalog' OR p.proname ~ '^dblink')
   AND p.proname ~ '^(query|table|cursor|schema|database)_to_xml|^pg_(read_file|read_binary_file|ls_dir|stat_file)$|^lo_|^lo(read|write)$|^dblink|^pg_sleep|^set_config$|^pg_(try_)?advisory_|^ts_stat$|^ts_rewrite$|^pg_logical_emit_message$|^pg_notify$|^txid_current$|^pg_current_xact_id$|^pg_(cancel|terminate)_backend$'
\gexec
SELECT format('GRANT EXECUTE ON FUNCTION %s TO benefitflow_app, benefitflow_owner', p.oid::regprocedure)
  FROM pg_proc AS p
 WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname ~ '^pg_sleep|^set_config$|^pg_(try_)?advisory_'
\gexec
SQL

run_psql --dbname airflow <<'SQL'
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
GRANT CONNECT ON DATABASE airflow TO airflow_reader;
SQL

echo "postgres-init: databases airflow, superset, benefitflow and their users are ready"
