-- A text cell a spreadsheet would read as a formula is written with a leading apostrophe, which
-- spreadsheets show as text and do not evaluate. Such a cell begins with =, +, -, @, | or % (or their
-- fullwidth forms), a tab, a carriage return or a line feed, or with spaces (no-break and zero-width
-- ones too) or double quotes before one of those: OWASP's CSV-injection rule, widened as Superset's
-- own CSV export widens it. Applied to every text column of every CSV the platform writes (exports,
-- payroll files, error reports); numbers, dates and identifiers the platform made are written as they
-- are, so amounts, the control total and the file's sha256 mean what they meant.
-- ascii() (the first character's code point) decides for nearly every value; the pattern runs only on
-- values that begin with a space or a quote.
-- Runs as benefitflow_owner.
CREATE FUNCTION intake.spreadsheet_safe(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN ascii(value) IN (61, 43, 45, 64, 124, 37, 9, 13, 10, 65309, 65291, 65293, 65312) THEN '''' || value
    WHEN ascii(value) IN (32, 160, 8203, 65279, 34)
         AND value ~ '^[[:space:]\u00a0\u200b\ufeff"]*[-=+@|%\uff1d\uff0b\uff0d\uff20]' THEN '''' || value
    ELSE value
END;
COMMENT ON FUNCTION intake.spreadsheet_safe(text) IS
    'The value as a CSV cell no spreadsheet evaluates: a leading apostrophe before a formula''s first character.';
GRANT EXECUTE ON FUNCTION intake.spreadsheet_safe(text) TO benefitflow_app;
