-- Duplicate people: how two records are compared (schema `matching`), the pairs a search found, and what
-- reviewers decided about them (ledger). Runs as benefitflow_owner (the database's owner: it may create the
-- trusted fuzzystrmatch and unaccent).
--
-- One definition of "alike" for the registry-wide search (dbt: registry.duplicate_keys, the
-- duplicates_search proposal) and for every upload's likely-duplicate check (registry/checks.sql): the
-- functions below. Which blocks a search uses, the weights and the thresholds are the rules document's
-- (registry/duplicate_rules.yaml), passed as jsonb; nothing of it is pasted into SQL.

CREATE EXTENSION IF NOT EXISTS fuzzystrmatch WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;

CREATE SCHEMA IF NOT EXISTS matching;
GRANT USAGE ON SCHEMA matching TO benefitflow_app;

-- A name as letters only: accents off, lower case, apostrophes dropped (O'Brien is obrien), anything else a
-- single space. unaccent with its dictionary named is immutable in practice (the dictionary is the
-- extension's file); the one-argument form is only stable, and these values are indexed.
CREATE FUNCTION matching.clean_name(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(btrim(regexp_replace(
        regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, coalesce(name, ''))), '[''’`]', '', 'g'),
        '[^a-z]+', ' ', 'g')), '')
$$;

-- How a name sounds (Soundex of its first word: a middle name or a second family name does not change it).
CREATE FUNCTION matching.name_code(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(public.soundex(split_part(matching.clean_name(name), ' ', 1)), '')
$$;

-- The digits of a phone number, the country code included, when there are at least seven.
CREATE FUNCTION matching.phone_digits(phone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN length(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')) >= 7
                THEN regexp_replace(phone, '[^0-9]', '', 'g') END
$$;

-- The blocks a person falls in: two records are compared only when they share a block key. The blocks, in
-- this order (matching.block_names), and the slips each lets through:
--   dob_last_name          same date of birth, last names that sound alike      (first name misspelt or missing)
--   dob_first_name         same date of birth, first names that sound alike     (last name misspelt or changed)
--   names_day_month_any    both names alike, same year, day and month either way (day and month swapped)
--   names_year_month       both names alike, same year and month                (a slip in the day)
--   names_year_day         both names alike, same year and day                  (a slip in the month)
--   names_month_day        both names alike, same day and month                 (a slip in the year)
--   phone                  the same phone number
-- registry.duplicate_keys (dbt) keeps one column per block, in this order; the rules' schema lists the same names.
CREATE FUNCTION matching.block_names() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['dob_last_name', 'dob_first_name', 'names_day_month_any', 'names_year_month', 'names_year_day',
                 'names_month_day', 'phone']
$$;

-- A person's key in each block (matching.block_names' order; NULL where the person has no such key): a 64-bit hash
-- of the block's name and value. PL/pgSQL so that each name's code is computed once per person (an inlined SQL
-- function recomputed it for every block: 90 s instead of 5 s for a million people).
CREATE FUNCTION matching.block_keys(first_name text, last_name text, dob date, phone text) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    first_code constant text := matching.name_code(first_name);
    last_code constant text := matching.name_code(last_name);
    names constant text := first_code || last_code;  -- Soundex codes are four characters: no ambiguity
    y constant text := to_char(dob, 'YYYY');
    m constant text := to_char(dob, 'MM');
    d constant text := to_char(dob, 'DD');
BEGIN
    RETURN ARRAY[
        hashtextextended('dob_last_name:' || y || m || d || last_code, 0),
        hashtextextended('dob_first_name:' || y || m || d || first_code, 0),
        hashtextextended('names_day_month_any:' || y || least(m, d) || greatest(m, d) || names, 0),
        hashtextextended('names_year_month:' || y || m || names, 0),
        hashtextextended('names_year_day:' || y || d || names, 0),
        hashtextextended('names_month_day:' || m || d || names, 0),
        hashtextextended('phone:' || matching.phone_digits(phone), 0)];
END;
$$;

-- How alike two dates of birth are: 1 the same; the rules' `swapped` value when day and month are swapped;
-- their `one_digit` value when the two differ in one digit of YYYYMMDD; else 0.
CREATE FUNCTION matching.dob_likeness(a date, b date, rules jsonb) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    x constant text := to_char(a, 'YYYYMMDD');
    y constant text := to_char(b, 'YYYYMMDD');
BEGIN
    IF a IS NULL OR b IS NULL THEN
        RETURN NULL;
    ELSIF a = b THEN
        RETURN 1;
    ELSIF substr(x, 1, 4) = substr(y, 1, 4) AND substr(x, 5, 2) = substr(y, 7, 2) AND substr(x, 7, 2) = substr(y, 5, 2) THEN
        RETURN (rules #>> '{dob,swapped}')::numeric;
    ELSIF (substr(x, 1, 1) <> substr(y, 1, 1))::int + (substr(x, 2, 1) <> substr(y, 2, 1))::int
          + (substr(x, 3, 1) <> substr(y, 3, 1))::int + (substr(x, 4, 1) <> substr(y, 4, 1))::int
          + (substr(x, 5, 1) <> substr(y, 5, 1))::int + (substr(x, 6, 1) <> substr(y, 6, 1))::int
          + (substr(x, 7, 1) <> substr(y, 7, 1))::int + (substr(x, 8, 1) <> substr(y, 8, 1))::int = 1 THEN
        RETURN (rules #>> '{dob,one_digit}')::numeric;
    END IF;
    RETURN 0;
END;
$$;

-- How alike two names (cleaned) are: the best of their trigram similarity, one minus their edit distance per
-- letter (two letters transposed in a short name, which trigrams hardly see), and 0.8 when they sound alike
-- (Soundex: Lna and Lan, Juan and John).
CREATE FUNCTION matching.name_likeness(a text, b text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a <> '' AND b <> '' THEN greatest(
        public.similarity(a, b)::numeric,
        -- levenshtein refuses more than 255 characters; a name's first hundred say enough
        1 - public.levenshtein(left(a, 100), left(b, 100))::numeric / greatest(length(left(a, 100)), length(left(b, 100))),
        CASE WHEN public.soundex(a) = public.soundex(b) THEN 0.8 END) END
$$;

-- What the comparison of two records reads of each.
CREATE TYPE matching.person AS (
    first_name     text,
    last_name      text,
    dob            date,
    sex            text,
    location_code  text,
    region         text,
    household_code text,
    phone          text,
    national_id    text
);

-- How alike two records are, field by field (each 0 to 1; a field missing on either side is left out), and
-- the score: the fields' weighted mean under the rules' `weights`. Names: the less alike of the given names
-- (whole, or their first words: a middle name written on one record only) and the family names, so that two
-- siblings with the family name and birthday of twins are not alike. A phone counts when it is the same:
-- people change numbers, so a different one says little. `fields` is what the reviewer reads: each compared
-- field's likeness. PL/pgSQL: each part computed once (as an SQL function with subqueries it cost 420
-- microseconds a pair; this, about 35).
CREATE TYPE matching.likeness AS (score numeric, fields jsonb);

CREATE FUNCTION matching.likeness(a matching.person, b matching.person, rules jsonb) RETURNS matching.likeness
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    first_a constant text := matching.clean_name(a.first_name);
    first_b constant text := matching.clean_name(b.first_name);
    last_a constant text := matching.clean_name(a.last_name);
    last_b constant text := matching.clean_name(b.last_name);
    name numeric := round(least(
        greatest(matching.name_likeness(first_a, first_b),
                 matching.name_likeness(split_part(first_a, ' ', 1), split_part(first_b, ' ', 1))),
        matching.name_likeness(last_a, last_b)), 3);
    dob numeric := matching.dob_likeness(a.dob, b.dob, rules);
    sex numeric := CASE WHEN a.sex IS NOT NULL AND b.sex IS NOT NULL THEN (a.sex = b.sex)::int END;
    location numeric := CASE
        WHEN a.location_code = b.location_code THEN 1
        WHEN a.region = b.region THEN (rules #>> '{location,same_region}')::numeric
        WHEN coalesce(a.location_code, a.region) IS NOT NULL AND coalesce(b.location_code, b.region) IS NOT NULL THEN 0
    END;
    phone numeric := CASE WHEN matching.phone_digits(a.phone) = matching.phone_digits(b.phone) THEN 1 END;
    national_id numeric := CASE WHEN a.national_id IS NOT NULL AND b.national_id IS NOT NULL
                                THEN (a.national_id = b.national_id)::int END;
    household numeric := CASE WHEN a.household_code IS NOT NULL AND b.household_code IS NOT NULL
                              THEN (a.household_code = b.household_code)::int END;
    w jsonb := rules -> 'weights';
    weighted numeric := coalesce(name * (w ->> 'name')::numeric, 0) + coalesce(dob * (w ->> 'dob')::numeric, 0)
        + coalesce(sex * (w ->> 'sex')::numeric, 0) + coalesce(location * (w ->> 'location')::numeric, 0)
        + coalesce(phone * (w ->> 'phone')::numeric, 0) + coalesce(national_id * (w ->> 'national_id')::numeric, 0)
        + coalesce(household * (w ->> 'household')::numeric, 0);
    total numeric := CASE WHEN name IS NULL THEN 0 ELSE (w ->> 'name')::numeric END
        + CASE WHEN dob IS NULL THEN 0 ELSE (w ->> 'dob')::numeric END
        + CASE WHEN sex IS NULL THEN 0 ELSE (w ->> 'sex')::numeric END
        + CASE WHEN location IS NULL THEN 0 ELSE (w ->> 'location')::numeric END
        + CASE WHEN phone IS NULL THEN 0 ELSE (w ->> 'phone')::numeric END
        + CASE WHEN national_id IS NULL THEN 0 ELSE (w ->> 'national_id')::numeric END
        + CASE WHEN household IS NULL THEN 0 ELSE (w ->> 'household')::numeric END;
BEGIN
    RETURN (round(coalesce(weighted / nullif(total, 0), 0), 3),
            jsonb_strip_nulls(jsonb_build_object('name', name, 'dob', dob, 'sex', sex, 'location', location,
                                                 'phone', phone, 'national_id', national_id,
                                                 'household', household)))::matching.likeness;
END;
$$;

-- Whether a pair is a candidate at all: its score reaches the rules' `keep_threshold` and its names are
-- at least `min_name_likeness` alike (two members of a household sharing a phone are not one person).
CREATE FUNCTION matching.is_candidate(likeness matching.likeness, rules jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT likeness.score >= (rules ->> 'keep_threshold')::numeric
       AND (likeness.fields ->> 'name')::numeric >= (rules ->> 'min_name_likeness')::numeric
$$;

------------------------------------------------------------------------------------------------------
-- The ledger: searches, the pairs they found, and the reviews.
------------------------------------------------------------------------------------------------------

-- One row per committed search: the rules it ran under, and the registry commits whose people it examined
-- (a search of what changed examines those not covered by an earlier search).
CREATE TABLE ledger.duplicate_searches (
    commit_id        bigint      PRIMARY KEY REFERENCES ledger.commits (commit_id),
    request_id       bigint      NOT NULL REFERENCES intake.requests (request_id),
    scope            text        NOT NULL CHECK (scope IN ('registry', 'changed')),
    rules_sha256     text        NOT NULL CHECK (rules_sha256 ~ '^[0-9a-f]{64}$'),
    rules            jsonb       NOT NULL,
    covered_commits  bigint[]    NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.duplicate_searches IS
    'Committed duplicate searches: the rules in force and the registry commits whose people they examined.';
SELECT ledger.make_append_only('ledger.duplicate_searches');

-- The registry commits a search examines the people of: those registry.duplicate_keys had taken in by the
-- search's validation (take-in `taken_in_up_to`: publishes take turns, so take-ins become visible in order),
-- which gave someone a version; for a search of what changed, only those no committed search covered. One
-- definition for validation (how many people), the proposal (who is examined) and the commit (what it covered).
CREATE FUNCTION matching.commits_to_search(scope text, taken_in_up_to bigint) RETURNS TABLE (commit_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT taken.commit_id
    FROM publishing.taken_in_commits AS taken
    WHERE taken.model = 'registry.duplicate_keys' AND taken.take_in <= taken_in_up_to
      AND EXISTS (SELECT FROM ledger.individual_versions AS v WHERE v.commit_id = taken.commit_id)
      AND (scope = 'registry'
           OR taken.commit_id NOT IN (SELECT unnest(searches.covered_commits) FROM ledger.duplicate_searches AS searches))
$$;

-- A pair of records a search found alike, at the versions it compared (individual_a < individual_b).
CREATE TABLE ledger.duplicate_candidates (
    candidate_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    individual_a   uuid        NOT NULL,
    version_a      integer     NOT NULL,
    individual_b   uuid        NOT NULL,
    version_b      integer     NOT NULL,
    score          numeric(4,3) NOT NULL CHECK (score BETWEEN 0 AND 1),
    fields         jsonb       NOT NULL,
    rules_sha256   text        NOT NULL,
    commit_id      bigint      NOT NULL REFERENCES ledger.duplicate_searches (commit_id),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (individual_a < individual_b)
);
COMMENT ON TABLE ledger.duplicate_candidates IS
    'Pairs of individuals a duplicate search found alike, with the score and each field''s likeness.';
CREATE INDEX duplicate_candidates_by_pair ON ledger.duplicate_candidates (individual_a, individual_b);
CREATE INDEX duplicate_candidates_by_b ON ledger.duplicate_candidates (individual_b);
CREATE INDEX duplicate_candidates_by_commit ON ledger.duplicate_candidates (commit_id);
SELECT ledger.make_append_only('ledger.duplicate_candidates');

-- What a review decided about a pair: CONFIRMED (one person: `retired` merged into `survivor`), DISMISSED
-- (two people), or UNMERGED (a confirmed pair found to be two people after all: both records again).
CREATE TABLE ledger.duplicate_reviews (
    candidate_id  bigint      NOT NULL REFERENCES ledger.duplicate_candidates (candidate_id),
    version       integer     NOT NULL CHECK (version >= 1),
    decision      text        NOT NULL CHECK (decision IN ('CONFIRMED', 'DISMISSED', 'UNMERGED')),
    survivor_id   uuid,
    retired_id    uuid,
    version_a     integer     NOT NULL,  -- the pair's versions once the review is committed: a dismissed or
    version_b     integer     NOT NULL,  -- unmerged pair is not proposed again until one of them changes
    reason        text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    request_id    bigint      NOT NULL REFERENCES intake.requests (request_id),
    commit_id     bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (candidate_id, version),
    CHECK ((decision = 'DISMISSED') = (survivor_id IS NULL AND retired_id IS NULL))
);
COMMENT ON TABLE ledger.duplicate_reviews IS
    'Reviews of duplicate pairs in order: CONFIRMED (merged), DISMISSED (not a duplicate), UNMERGED.';
CREATE INDEX duplicate_reviews_by_commit ON ledger.duplicate_reviews (commit_id);
SELECT ledger.make_append_only('ledger.duplicate_reviews');

-- Only an open pair is confirmed or dismissed, and only a confirmed one unmerged.
CREATE FUNCTION ledger.refuse_forbidden_duplicate_review() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n
        LEFT JOIN ledger.duplicate_reviews p ON p.candidate_id = n.candidate_id AND p.version = n.version - 1
        WHERE (n.version = 1 AND n.decision NOT IN ('CONFIRMED', 'DISMISSED'))
           OR (n.version > 1 AND (p.candidate_id IS NULL OR p.decision <> 'CONFIRMED' OR n.decision <> 'UNMERGED'))
    ) THEN
        RAISE EXCEPTION 'a duplicate pair is confirmed or dismissed while open, and only a confirmed one unmerged'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER duplicate_review_allowed AFTER INSERT ON ledger.duplicate_reviews
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_forbidden_duplicate_review();

-- A merged record's latest version names the record it was merged into; it is no longer in the registry's
-- current state (registry.individuals), and an unmerge appends a version without it.
ALTER TABLE ledger.individual_versions ADD COLUMN merged_into uuid;
COMMENT ON COLUMN ledger.individual_versions.merged_into IS
    'Set on the version that retires a duplicate: the individual it was merged into.';

-- A duplicates_review request selects candidate pairs.
ALTER TABLE intake.request_selection ADD COLUMN candidate_id bigint;
