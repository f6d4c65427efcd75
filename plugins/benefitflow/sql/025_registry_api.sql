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

-- Asynchronous searches and status requests (POST /registry/search, /registry/txn/status): the API records each
-- message here and acknowledges it; the `registry_api_search` DAG (started by the triggerer when one is
-- waiting) answers it and posts the answer to the client's registered callback. A sync search is recorded too,
-- so that /registry/*txn/status can report on it. `response` holds the answer until it is delivered (it may
-- name people); what a status request reports afterwards is kept in `statuses`.
CREATE SCHEMA IF NOT EXISTS registry_api;
CREATE TABLE registry_api.transactions (
    correlation_id     text        PRIMARY KEY,
    client_id          text        NOT NULL,
    transaction_id     text        NOT NULL,
    message_id         text        NOT NULL,
    action             text        NOT NULL CHECK (action IN ('search', 'sync-search', 'txn-status', 'subscribe',
                                                              'unsubscribe', 'notify')),
    request            jsonb       NOT NULL,
    status             text        NOT NULL CHECK (status IN ('rcvd', 'pdng', 'succ', 'rjct')),
    received_at        timestamptz NOT NULL DEFAULT now(),
    signalled_at       timestamptz,
    answered_at        timestamptz,
    response           jsonb,
    statuses           jsonb,
    delivered_at       timestamptz,
    delivery_attempts  integer     NOT NULL DEFAULT 0,
    last_delivery_error text,
    answered_by_run    text,
    CONSTRAINT one_message_once UNIQUE (client_id, message_id)
);
CREATE INDEX transactions_waiting ON registry_api.transactions (received_at)
    WHERE status = 'rcvd' OR (response IS NOT NULL AND delivered_at IS NULL);
CREATE INDEX transactions_by_client ON registry_api.transactions (client_id, transaction_id);
COMMENT ON TABLE registry_api.transactions IS
    'Registry API messages: asynchronous searches and status requests until answered and delivered, and sync searches, for status requests.';
GRANT USAGE ON SCHEMA registry_api TO benefitflow_registry_api, benefitflow_app;
GRANT SELECT, INSERT ON registry_api.transactions TO benefitflow_registry_api;
GRANT SELECT, UPDATE ON registry_api.transactions TO benefitflow_app;

-- Subscriptions (POST /registry/subscribe, /registry/unsubscribe): a client asks to be told of registry events
-- (REGISTER: a person registered; UPDATE: a field the client may read changed; NewHouseHoldMember: a person joined a
-- household) among the people its filter selects. After each publish of the registry the `registry_api_notify`
-- DAG takes the commits the registry's state has taken in since the subscription's last notified publish run
-- (publishing.taken_in_commits of registry.individuals: publishes take turns, so their runs' numbers grow in the
-- order their commits became visible), derives the events from those commits' individual versions, records a
-- `notify` message per page of records in the client's scope and moves the mark, in one transaction; the
-- registry_api_search DAG delivers them.
CREATE TABLE registry_api.subscriptions (
    code               text        PRIMARY KEY,
    client_id          text        NOT NULL,
    reference_id       text        NOT NULL,
    event_types        text[]      NOT NULL CHECK (event_types <@ ARRAY['REGISTER', 'UPDATE', 'NewHouseHoldMember']
                                                   AND cardinality(event_types) > 0),
    filter_type        text        NOT NULL CHECK (filter_type IN ('idtype-value', 'predicate', 'expression')),
    filter             jsonb       NOT NULL,
    record_type        text        NOT NULL CHECK (record_type IN ('Member', 'Group')),
    status             text        NOT NULL DEFAULT 'subscribe' CHECK (status IN ('subscribe', 'unsubscribe')),
    subscribed_at      timestamptz NOT NULL DEFAULT now(),
    unsubscribed_at    timestamptz,
    notified_take_in   bigint      NOT NULL,
    ended_reason       text
);
CREATE INDEX subscriptions_active ON registry_api.subscriptions (client_id) WHERE status = 'subscribe';
COMMENT ON COLUMN registry_api.subscriptions.notified_take_in IS
    'The last run of registry.individuals (publishing.take_ins) whose commits were notified (at subscription: the last one then).';
-- The service reads the last run number when a client subscribes (model names and commit ids, nothing personal).
GRANT USAGE ON SCHEMA publishing TO benefitflow_registry_api;
GRANT SELECT ON publishing.taken_in_commits TO benefitflow_registry_api;
GRANT SELECT, INSERT ON registry_api.subscriptions TO benefitflow_registry_api;
GRANT UPDATE (status, unsubscribed_at, ended_reason) ON registry_api.subscriptions TO benefitflow_registry_api;
GRANT SELECT, UPDATE ON registry_api.subscriptions TO benefitflow_app;
GRANT INSERT ON registry_api.transactions TO benefitflow_app;
