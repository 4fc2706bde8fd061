-- The alerter's memory, shared by every alerts replica and kept across
-- restarts: which kinds of alert went out when and how many were folded
-- since, the CRM retries of the last minutes and the last storm alert.
CREATE TABLE alert_kinds (
    kind       text        PRIMARY KEY, -- <consumer>/<class>
    last_sent  timestamptz,             -- NULL: never, or the last post failed
    suppressed integer     NOT NULL DEFAULT 0
);

CREATE TABLE alert_crm_retries (
    message_id text        PRIMARY KEY, -- a redelivered outcome counts once
    at         timestamptz NOT NULL
);
CREATE INDEX alert_crm_retries_at ON alert_crm_retries (at);

CREATE TABLE alert_storms (
    name       text        PRIMARY KEY,
    last_alert timestamptz NOT NULL
);
