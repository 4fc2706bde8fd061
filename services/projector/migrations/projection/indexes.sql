-- The projection's indexes, separate so Rebuild can index after its bulk
-- load; the unique indexes are the keys (ON CONFLICT uses them). Ids are
-- compared bytewise (COLLATE "C"): they are not words, and such indexes
-- build several times faster. event_sources finds the hub's events of a
-- Stripe event id (a GIN index on an array column built ten times slower).
-- One statement a line: Rebuild builds them in parallel.
CREATE UNIQUE INDEX IF NOT EXISTS events_pkey ON {{s}}.events (event_id);
CREATE INDEX IF NOT EXISTS events_customer ON {{s}}.events (customer_id, occurred_at, event_id);
CREATE UNIQUE INDEX IF NOT EXISTS event_sources_pkey ON {{s}}.event_sources (source_id, event_id);
CREATE UNIQUE INDEX IF NOT EXISTS aliases_pkey ON {{s}}.aliases (merged_id);
CREATE INDEX IF NOT EXISTS aliases_survivor ON {{s}}.aliases (survivor_id);
CREATE UNIQUE INDEX IF NOT EXISTS customers_pkey ON {{s}}.customers (customer_id);
CREATE INDEX IF NOT EXISTS customers_email ON {{s}}.customers (email);
CREATE INDEX IF NOT EXISTS customers_stripe ON {{s}}.customers USING gin (stripe_ids);
