-- The projection's tables; {{s}} is the quoted schema name. The projection
-- is derived data: changing these tables means a rebuild (bump ViewVersion),
-- not a migration.
CREATE SCHEMA IF NOT EXISTS {{s}};
CREATE TABLE IF NOT EXISTS {{s}}.events (
	event_id    text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	subject     text NOT NULL,
	occurred_at timestamptz NOT NULL,
	trace_id    text NOT NULL,
	payload     bytea NOT NULL, -- the protobuf message; summaries and source ids are read from it
	received_at timestamptz     -- billing events: when the hub received the Stripe event (NULL if unknown)
);
-- Projections created before received_at was recorded serve until their
-- rebuild swaps in, and must take new rows meanwhile.
ALTER TABLE {{s}}.events ADD COLUMN IF NOT EXISTS received_at timestamptz;
CREATE TABLE IF NOT EXISTS {{s}}.event_sources (
	source_id text COLLATE "C" NOT NULL,
	event_id  text COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS {{s}}.aliases (
	merged_id   text COLLATE "C" NOT NULL,
	survivor_id text COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS {{s}}.customers (
	customer_id   text COLLATE "C" NOT NULL,
	email         text NOT NULL,
	stripe_ids    text[] NOT NULL,
	state         text NOT NULL,
	last_event_at timestamptz NOT NULL,
	view          json NOT NULL
);
