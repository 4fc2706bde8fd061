-- Done effects: one row per side effect a consumer completed, never expired.
CREATE TABLE done_effects (
    consumer   text        NOT NULL,
    message_id text        NOT NULL,
    effect     text        NOT NULL,
    result     bytea,
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id, effect)
);

-- Failures: the retry history of a message a consumer has not yet handled,
-- so a dead letter can say when it first and last failed.
CREATE TABLE message_failures (
    consumer         text        NOT NULL,
    message_id       text        NOT NULL,
    attempts         integer     NOT NULL,
    first_failure_at timestamptz NOT NULL,
    last_failure_at  timestamptz NOT NULL,
    last_class       text        NOT NULL,
    last_reason      text        NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
