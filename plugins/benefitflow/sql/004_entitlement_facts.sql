-- What the entitlement rule needs to know of a selected person or household, computed with the
-- criteria compiler when a request selects them: members counted by the per-member rule, and
-- which top-ups (0-based positions in the rule's list) apply. dbt turns them into amounts.
ALTER TABLE intake.request_selection ADD COLUMN counted_members integer;
ALTER TABLE intake.request_selection ADD COLUMN top_ups jsonb;  -- a JSON array of positions
