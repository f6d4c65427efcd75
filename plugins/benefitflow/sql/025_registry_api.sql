-- The registry API's login (benefitflow.registry_api): partner systems query the registry's current state
-- through it. It reads the registry schema (dbt's current state of individuals and households) and appends
-- to the audit trail (each answer is an event; the chain trigger fills in the ids and hashes), nothing else:
-- no ledger, intake, proposal or mart table, no other schema. Runs as benefitflow_owner; the login itself
-- is made, with its password and statement timeout, where the cluster's other logins are.
GRANT CONNECT ON DATABASE benefitflow TO benefitflow_registry_api;
GRANT USAGE ON SCHEMA registry TO benefitflow_registry_api;
GRANT SELECT ON ALL TABLES IN SCHEMA registry TO benefitflow_registry_api;
-- dbt replaces a state table on a full rebuild: the new one is readable too.
ALTER DEFAULT PRIVILEGES FOR ROLE benefitflow_app IN SCHEMA registry GRANT SELECT ON TABLES TO benefitflow_registry_api;

GRANT USAGE ON SCHEMA ledger TO benefitflow_registry_api;
-- INSERT … RETURNING event_id needs SELECT on that column, and on no other.
GRANT INSERT, SELECT (event_id) ON ledger.audit_events TO benefitflow_registry_api;
