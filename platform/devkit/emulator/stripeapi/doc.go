// Package stripeapi is a local, in-memory emulator of the Stripe API reads the
// hub makes: retrieving customers, subscriptions, invoices, charges, payment
// intents and products (a plan's name: webhooks name a price's product by id
// only), and
// listing and retrieving events (the backfill path for missed webhook
// deliveries), and listing the account's webhook endpoints (what
// `switchyard doctor` checks). It is an http.Handler, so tests mount it on httptest and
// `switchyard dev` on a real listener, and stripe-go v76 talks to it unchanged
// when its backend URL points here.
//
// What it emulates, as Stripe documents or is observed to do:
//
//   - Authentication: `Authorization: Bearer <key>` or basic auth with the key
//     as user name. Missing or unknown keys get 401 with Stripe's
//     invalid_request_error body; an unknown key is masked in the message the
//     way Stripe masks it. The key's mode (sk_live_/rk_live_ = live, anything
//     else test) decides which objects and events the request can see, and a
//     retrieve across modes gets Stripe's "a similar object exists in live
//     mode" 404.
//   - GET /v1/{customers,subscriptions,invoices,charges,payment_intents,products,events}/{id}:
//     the stored JSON, byte for byte in key order (re-indented like Stripe's
//     pretty output); 404 resource_missing with param "id" otherwise ("No
//     such product: 'prod_…'" for a product never stored or deleted by a
//     product.deleted event). Events older than 30 days cannot be retrieved,
//     as Stripe documents.
//   - GET /v1/events: the list envelope, newest first (ties in `created`, which
//     has one-second resolution, go to the event added later), cursor
//     pagination by event id with starting_after / ending_before and has_more,
//     limit 1..100 (default 10), filters type (with `*` wildcards), types[]
//     (up to 20, exact names), created (exact or gt/gte/lt/lte),
//     delivery_success, and only events created within 30 days of Options.Now.
//   - Webhook endpoints (PutWebhookEndpoint): GET /v1/webhook_endpoints lists
//     the key's mode's endpoints, newest first (ties by id), with cursor
//     pagination by endpoint id (starting_after / ending_before, has_more,
//     limit 1..100, default 10); GET /v1/webhook_endpoints/{id} retrieves
//     one. The endpoint's signing secret is never shown, as Stripe shows it
//     only at creation; api_version is served as stored (null means the
//     account's default, which Stripe-Version says back to a request that
//     sends none).
//   - Parameter checking like Stripe's: unknown parameters (parameter_unknown),
//     empty strings (parameter_invalid_empty), non-integers
//     (parameter_invalid_integer), starting_after together with ending_before,
//     type together with types, a cursor that names no event
//     (resource_missing, param starting_after/ending_before).
//   - Headers: Request-Id (req_ + 14 characters) on every response;
//     Stripe-Version says back the request's version, or the account default
//     (Options.APIVersion, default 2023-10-16) when none was sent; error bodies
//     carry doc_url and request_log_url the way Stripe's do.
//   - Rate limiting: a token bucket per mode, per second, answering 429 with
//     code rate_limit (Stripe's documented defaults are DefaultLiveReadLimit and
//     DefaultTestReadLimit; both are off unless configured).
//   - A log of the requests answered (Requests), so tests count what a client
//     asked for without wrapping the handler.
//
// What it adds that Stripe does not have:
//
//   - POST /_emulator/events (EmulatorEventsPath), NOT part of Stripe's API:
//     the body is one Stripe event's JSON, sent with the same
//     `Authorization` as the API (a key of the event's mode). It stores the
//     event as delivered and the object it carries, as SeedFromEvent does,
//     and answers 200 with the event. It is idempotent per event id: the
//     same bytes again answer 200 and change nothing; other bytes under a
//     stored id answer 409 (type idempotency_error, param id), since an
//     event id names one event. A body that is not an event answers 400
//     invalid_request_error with param naming the field (id, object, type,
//     created, livemode, data[object], data[object][id]). Injected failures
//     (FailNext) and rate limits do not apply to it: they stand for Stripe's
//     behaviour, and this endpoint is the emulator's. It is how a tool that
//     makes up an event (`switchyard dev`'s clients) makes Stripe "have" it,
//     so the hub's refetches of its objects find them.
//   - POST /_emulator/objects (EmulatorObjectsPath), NOT part of Stripe's
//     API: the body is one object of a kind the emulator serves (Serves:
//     customer, subscription, invoice, charge, payment_intent, product),
//     named by its "object" field, with a key of its mode. It stores the
//     object (a newer version replaces the stored one, as objects change)
//     and answers 200 with it; another kind, no id, or the other mode
//     answers 400 invalid_request_error (param object or livemode). Faults
//     and rate limits do not apply. `switchyard trigger` registers the
//     objects a made-up event names this way (a dispute's charge).
//   - State that outlives the process: MarshalState, MarshalChanges,
//     UnmarshalState and Changes make a Server a statefile.Journaled, so
//     `switchyard dev` keeps its objects and events across restarts (the
//     keys, faults, limits and request log are not kept).
//
// What it knowingly does not emulate:
//
//   - Writes (POST/DELETE) and every other endpoint: known paths answer 501
//     with a message saying so, unknown paths Stripe's "Unrecognized request
//     URL" 404. State changes only through the Put*/AddEvent/SeedFromEvent
//     methods and the emulator-only POST /_emulator/events and
//     /_emulator/objects; nothing creates
//     events on its own and nothing is delivered to webhooks (a registered
//     event is marked delivered, and posting it to the hub is the caller's
//     job).
//   - expand[] and the Stripe-Account (Connect) header are refused with 400
//     rather than ignored, so a caller relying on them notices.
//   - API-version rendering: objects are returned as stored, whatever
//     Stripe-Version asks for; the header is only said back.
//   - Restricted-key permissions, publishable keys, expired keys, idempotency
//     keys, the concurrency limiter and per-endpoint limits, and Stripe's
//     object-level lock_timeout 429s. Retry-After on 429 is an emulator
//     convenience: Stripe does not document sending it, so a client must not
//     depend on it (stripe-go v76 ignores it and does not retry rate_limit).
//   - Deleted objects other than customers and products (a customer.deleted
//     event seeded through SeedFromEvent leaves Stripe's
//     {"id","object","deleted":true} stub, which is what retrieving a deleted
//     customer returns; a deleted product is 404).
//   - Objects that other objects name: seeding a subscription or invoice does
//     not add its price's product (webhooks carry the product's id, never its
//     name), nor a charge its payment intent; Put them, or seed their own
//     events. Prices, refunds, disputes, checkout sessions and other kinds
//     are not stored or served at all (an event carrying one stores only the
//     event).
//
// All methods are safe for concurrent use.
package stripeapi
