-- Canonical customers. A customer found to be the same person as another
-- is merged: its links move to the survivor and merged_into points there.
CREATE TABLE customers (
    canonical_id text        PRIMARY KEY,
    email        text        NOT NULL DEFAULT '',
    name         text        NOT NULL DEFAULT '',
    merged_into  text        REFERENCES customers (canonical_id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every identifier known for a customer: stripe_customer (cus_…), email
-- (normalised), charge, invoice, subscription, crm_contact, support_user.
CREATE TABLE customer_links (
    kind            text        NOT NULL,
    value           text        NOT NULL,
    canonical_id    text        NOT NULL REFERENCES customers (canonical_id),
    source_event_id text        NOT NULL,
    linked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
CREATE INDEX customer_links_canonical ON customer_links (canonical_id);

-- The version of each Stripe object last applied: events older than it,
-- or tied with it and of lower status precedence, are stale.
CREATE TABLE object_versions (
    object_id text   PRIMARY KEY,
    created   bigint NOT NULL,
    event_id  text   NOT NULL,
    status    text   NOT NULL DEFAULT ''
);
