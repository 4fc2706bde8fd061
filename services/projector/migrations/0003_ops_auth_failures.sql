-- Failed authentications on the status API and console, counted by every
-- replica (opsauth.Throttle.Shared): a client address (or IPv6 /64) or a
-- token's keyed fingerprint, never the token. Rows older than the
-- throttle's window are deleted as new ones come.
CREATE TABLE ops_auth_failures (
    key text        NOT NULL,
    at  timestamptz NOT NULL
);
CREATE INDEX ops_auth_failures_key_at ON ops_auth_failures (key, at);
CREATE INDEX ops_auth_failures_at ON ops_auth_failures (at);
