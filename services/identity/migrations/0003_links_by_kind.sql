-- Reading a customer's Stripe customers (every event does) must not scan
-- every invoice and charge linked to it: a busy customer has thousands.
-- The composite index also serves every lookup by canonical_id alone.
CREATE INDEX customer_links_canonical_kind ON customer_links (canonical_id, kind);
DROP INDEX customer_links_canonical;
