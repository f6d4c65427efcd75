-- intake.parse_iso_date without date arithmetic: the days of the month from the month and the leap-year
-- rule, the date made from its three numbers. Same answers (compared on a million synthetic dates and the
-- edge cases: 29 February of 1900, 2000, 2023 and 2024, 31 April, month 13); 1.6 s instead of 3.8 s a
-- million rows, on one core.
CREATE OR REPLACE FUNCTION intake.parse_iso_date(value text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
        AND substr(value, 9, 2)::int <= CASE substr(value, 6, 2)
            WHEN '02' THEN CASE WHEN substr(value, 1, 4)::int % 4 = 0
                                    AND (substr(value, 1, 4)::int % 100 <> 0 OR substr(value, 1, 4)::int % 400 = 0)
                               THEN 29 ELSE 28 END
            WHEN '04' THEN 30 WHEN '06' THEN 30 WHEN '09' THEN 30 WHEN '11' THEN 30
            ELSE 31 END
        THEN make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int, substr(value, 9, 2)::int)
    END
$$;
