-- Merges, keyed by the merged (losing) customer: which event merged it
-- into which survivor, so a redelivered event re-announces its merges.
CREATE TABLE customer_merges (
    loser      text        PRIMARY KEY REFERENCES customers (canonical_id),
    survivor   text        NOT NULL REFERENCES customers (canonical_id),
    event_id   text        NOT NULL,
    merged_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_merges_event ON customer_merges (event_id);

-- Two customers linked to different Stripe customers that share an
-- identifier (usually an email): never merged automatically (a typed email
-- must not move a Stripe customer's events to someone else), kept here for
-- an operator to look at.
CREATE TABLE suspected_duplicates (
    customer_a text        NOT NULL REFERENCES customers (canonical_id),
    customer_b text        NOT NULL REFERENCES customers (canonical_id),
    event_id   text        NOT NULL,
    found_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_a, customer_b),
    CHECK (customer_a < customer_b)
);
