-- The alerter's memory, shared by every alerts replica and kept across
-- restarts: which kinds of alert went out when and how many were folded
-- since, the CRM retries of the last minutes and the retry storm under way.
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

-- A storm is alerted once when it starts (active), reminded of hourly
-- while it lasts, and closed with one message when it is over.
CREATE TABLE alert_storms (
    name       text        PRIMARY KEY,
    active     boolean     NOT NULL DEFAULT false,
    started_at timestamptz NOT NULL,
    last_alert timestamptz NOT NULL, -- the start alert or the last reminder
    retries    integer     NOT NULL DEFAULT 0 -- counted since it started
);
