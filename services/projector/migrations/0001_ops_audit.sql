-- Every manual action taken in the ops console: who, when, what, and why.
CREATE TABLE ops_audit (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL, -- replay, discard, rebuild, login
    target  text        NOT NULL, -- e.g. "dlq 42 (crm, billing.payment.failed:in_1:1)"
    note    text        NOT NULL DEFAULT '',
    result  text        NOT NULL
);
CREATE INDEX ops_audit_at ON ops_audit (at DESC);
