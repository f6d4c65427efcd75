-- A text cell a spreadsheet would read as a formula (it begins with =, +, -, @, a tab or a carriage
-- return: OWASP's CSV-injection rule) is written with a leading apostrophe, which spreadsheets show
-- as text and do not evaluate. Applied to every text column of every CSV the platform writes
-- (exports, payroll files, error reports); numbers, dates and identifiers the platform made are
-- written as they are, so amounts, the control total and the file's sha256 mean what they meant.
-- Runs as benefitflow_owner.
CREATE FUNCTION intake.spreadsheet_safe(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- ascii() of the first character (=, +, -, @, tab, CR): cheaper than taking the character as text.
RETURN CASE WHEN ascii(value) IN (61, 43, 45, 64, 9, 13) THEN '''' || value ELSE value END;
COMMENT ON FUNCTION intake.spreadsheet_safe(text) IS
    'The value as a CSV cell no spreadsheet evaluates: a leading apostrophe before =, +, -, @, tab or CR.';
GRANT EXECUTE ON FUNCTION intake.spreadsheet_safe(text) TO benefitflow_app;
