-- Payments: cycles, bills frozen at approval, payrolls, their export files, and what the
-- payment provider reported. Runs as benefitflow_owner.

CREATE SCHEMA IF NOT EXISTS payments AUTHORIZATION benefitflow_app;

-- A payroll request selects bills; a cycle request selects beneficiaries (beneficiary_id).
ALTER TABLE intake.request_selection ADD COLUMN bill_id uuid;

------------------------------------------------------------------------------------------
-- Cycles and bills
------------------------------------------------------------------------------------------
CREATE TABLE ledger.payment_cycles (
    cycle_code    text        NOT NULL CHECK (cycle_code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$'),
    plan_code     text        NOT NULL,
    period_start  date        NOT NULL,
    period_end    date        NOT NULL CHECK (period_end >= period_start),
    commit_id     bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cycle_code, plan_code)
);
COMMENT ON TABLE ledger.payment_cycles IS
    'A plan''s payment cycle, recorded by its first approved run (later runs bill those not yet billed).';
SELECT ledger.make_append_only('ledger.payment_cycles');

CREATE TABLE ledger.bills (
    bill_id          uuid          PRIMARY KEY,
    bill_number      bigint        GENERATED ALWAYS AS IDENTITY UNIQUE,
    bill_code        text          GENERATED ALWAYS AS ('BL' || lpad(bill_number::text, 9, '0')) STORED UNIQUE,
    cycle_code       text          NOT NULL,
    plan_code        text          NOT NULL,
    plan_version     integer       NOT NULL,
    beneficiary_id   uuid          NOT NULL,
    individual_id    uuid,
    household_code   text,
    amount           numeric(14,2) NOT NULL CHECK (amount >= 0),
    currency         text          NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    counted_members  integer,      -- what the rule's amount came from, kept with it
    top_ups          jsonb,
    held             boolean       NOT NULL,  -- over the plan's transaction_limit: released by its own approval
    commit_id        bigint        NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at      timestamptz   NOT NULL DEFAULT now(),
    FOREIGN KEY (cycle_code, plan_code) REFERENCES ledger.payment_cycles (cycle_code, plan_code),
    CONSTRAINT billed_once_per_cycle UNIQUE (cycle_code, plan_code, beneficiary_id)
);
COMMENT ON TABLE ledger.bills IS
    'One bill per beneficiary per cycle, frozen at approval: later plan or beneficiary changes do not alter it.';
CREATE INDEX bills_by_commit ON ledger.bills (commit_id);
SELECT ledger.make_append_only('ledger.bills');

------------------------------------------------------------------------------------------
-- Payrolls: bills combined for a payment provider, approved, exported, reconciled
------------------------------------------------------------------------------------------
CREATE TABLE ledger.payrolls (
    payroll_id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payroll_name         text        NOT NULL UNIQUE,
    cycle_code           text        NOT NULL,
    plan_code            text,
    payment_point        text,
    criteria             jsonb,
    include_unpaid_from  text,
    request_id           bigint      NOT NULL REFERENCES intake.requests (request_id),
    commit_id            bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
SELECT ledger.make_append_only('ledger.payrolls');

CREATE TABLE ledger.payroll_bills (
    payroll_id  bigint        NOT NULL REFERENCES ledger.payrolls (payroll_id),
    bill_id     uuid          NOT NULL REFERENCES ledger.bills (bill_id),
    amount      numeric(14,2) NOT NULL,
    commit_id   bigint        NOT NULL REFERENCES ledger.commits (commit_id),
    PRIMARY KEY (payroll_id, bill_id)
);
CREATE INDEX payroll_bills_by_bill ON ledger.payroll_bills (bill_id);
SELECT ledger.make_append_only('ledger.payroll_bills');

-- A payroll is PENDING_APPROVAL (or REJECTED) as a request; once approved it is here.
CREATE TABLE ledger.payroll_events (
    payroll_id   bigint      NOT NULL REFERENCES ledger.payrolls (payroll_id),
    status       text        NOT NULL CHECK (status IN ('APPROVED_FOR_PAYMENT', 'RECONCILED')),
    commit_id    bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
SELECT ledger.make_append_only('ledger.payroll_events');

CREATE TABLE ledger.payroll_exports (
    payroll_id     bigint        NOT NULL REFERENCES ledger.payrolls (payroll_id),
    file_name      text          NOT NULL,
    sha256         text          NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    row_count      bigint        NOT NULL,
    control_total  numeric(16,2) NOT NULL,
    commit_id      bigint        NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at    timestamptz   NOT NULL DEFAULT now()
);
SELECT ledger.make_append_only('ledger.payroll_exports');

-- A bill's status after its creation (DUE, or HELD when held): released, paid, failed, moved.
CREATE TABLE ledger.bill_events (
    bill_id      uuid          NOT NULL REFERENCES ledger.bills (bill_id),
    status       text          NOT NULL CHECK (status IN ('DUE', 'PAID', 'FAILED')),
    payroll_id   bigint        REFERENCES ledger.payrolls (payroll_id),
    amount_paid  numeric(14,2),
    receipt      text,
    paid_on      date,
    provider_row jsonb,        -- the provider file's other columns, kept as given
    reason       text          NOT NULL,
    upload_id    bigint        REFERENCES intake.uploads (upload_id),
    row_number   bigint,
    commit_id    bigint        NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at  timestamptz   NOT NULL DEFAULT now(),
    CHECK (status <> 'PAID' OR nullif(btrim(receipt), '') IS NOT NULL)
);
CREATE INDEX bill_events_by_bill ON ledger.bill_events (bill_id);
SELECT ledger.make_append_only('ledger.bill_events');
