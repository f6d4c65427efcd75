-- The ledger is written by benefitflow_app but owned by benefitflow_owner, so only the owner may
-- ANALYZE it. Without fresh statistics right after a bulk append (a million bills, a million
-- payment results) the planner takes a just-filled table for empty and picks nested loops that
-- grow with the square of its size; autovacuum catches up only a minute or so later.
CREATE FUNCTION ledger.refresh_payment_statistics() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ledger, pg_temp AS $$
BEGIN
    ANALYZE ledger.bills;
    ANALYZE ledger.bill_events;
    ANALYZE ledger.payroll_bills;
END;
$$;
REVOKE ALL ON FUNCTION ledger.refresh_payment_statistics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.refresh_payment_statistics() TO benefitflow_app;
