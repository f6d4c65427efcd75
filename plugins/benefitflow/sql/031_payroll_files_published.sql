-- A payroll's file handed out: its final name and control file written, once. The recovery that
-- finishes the file of a payroll committed while its file was being written (a worker killed,
-- benefitflow.payments.payroll.finish_payroll_files) finishes only payrolls never published: a
-- published file that is gone later (picked up and moved by the provider, purged) is not written
-- again, which would be a second delivery of the same payroll.
-- Runs as benefitflow_owner.
CREATE TABLE ledger.payroll_files_published (
    payroll_id    bigint      PRIMARY KEY REFERENCES ledger.payrolls (payroll_id),
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    published_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.payroll_files_published IS
    'A payroll file put under its final name with its control file, once per payroll (never written again after).';
SELECT ledger.make_append_only('ledger.payroll_files_published');
SELECT ledger.check_references_per_statement('ledger.payroll_files_published');

-- Payrolls committed before this migration were published by their commits.
INSERT INTO ledger.payroll_files_published (payroll_id, sha256, published_at)
SELECT e.payroll_id, e.sha256, e.recorded_at FROM ledger.payroll_exports e;
