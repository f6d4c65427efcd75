-- Which regions each database login that reads the marts may see. Row-level security on every mart
-- with a region column, and the views over the marts with one, admit a login to the regions listed
-- here for current_user (dbt_project/macros/readable_region.sql): current_user, not a setting, since a
-- reader may set any setting of its own but cannot become another role (it is a member of none).
-- Written by the owner only (benefitflow.platform.readers.grant_marts, from superset/regions.json).
CREATE SCHEMA IF NOT EXISTS access;

CREATE TABLE access.mart_readers (
    login       name    PRIMARY KEY,
    all_regions boolean NOT NULL DEFAULT false,
    regions     text[]  NOT NULL DEFAULT '{}',
    CONSTRAINT all_or_listed CHECK (NOT (all_regions AND cardinality(regions) > 0))
);
COMMENT ON TABLE access.mart_readers IS
    'Database logins reading the marts and the regions each sees (all_regions: every region, rows without one included).';

-- A reader sees its own row only (the policies read this table as the reader); the owner writes it.
ALTER TABLE access.mart_readers ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_row ON access.mart_readers FOR SELECT USING (login = current_user);

-- The platform's own roles read every region (its exports read the regional views): here from the start,
-- not only once grant_marts has run.
INSERT INTO access.mart_readers (login, all_regions) VALUES ('benefitflow_app', true), ('benefitflow_owner', true);

-- dbt's views over the marts read it as their owner, the app user.
GRANT USAGE ON SCHEMA access TO benefitflow_app;
GRANT SELECT ON access.mart_readers TO benefitflow_app;
