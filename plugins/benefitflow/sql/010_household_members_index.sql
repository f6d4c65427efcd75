-- A household's members in the ledger, found through an index: the commit of an upload re-checks the
-- households it changes (one HEAD, one primary recipient) against the latest version of every individual
-- who is or was in them, under the registry lock — at any registry size, without reading it all.
-- Runs as benefitflow_owner.

CREATE INDEX individual_versions_by_household ON ledger.individual_versions (household_code)
    WHERE household_code IS NOT NULL;
