-- Console sessions ended by logging out: a session cookie is stateless, so
-- a logout is remembered here until the session would have expired.
CREATE TABLE ops_revoked_sessions (
    id         text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
