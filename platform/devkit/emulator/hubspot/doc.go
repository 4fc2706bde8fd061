// Package hubspot is a local, in-memory emulator of the HubSpot CRM v3
// contacts API the hub uses: batch upsert by email or a unique property,
// reads and search, and contact property definitions. It is an
// http.Handler, so tests mount it on httptest and `switchyard dev` on a
// real listener; a client reaches it by base URL alone, exactly as it
// reaches api.hubapi.com.
//
// What it emulates, as HubSpot documents or is observed to do:
//
//   - Auth: `Authorization: Bearer <private-app token>`. A missing, unknown or
//     revoked token (SetTokens) gets 401 INVALID_AUTHENTICATION ("Authentication
//     credentials not found. …"); a token without the endpoint's scope gets
//     403 MISSING_SCOPES with errors[].context.requiredGranularScopes. Every
//     response has an X-HubSpot-Correlation-Id header and error bodies carry
//     the same correlationId.
//   - POST /crm/v3/objects/contacts/batch/upsert: up to MaxBatchInputs inputs
//     (more is a 400); idProperty "email" or a custom property created with
//     hasUniqueValue (another is a 400 "non-unique 0-1 property"); duplicate
//     ids in one batch are a 400 ("Duplicate IDs found in batch input").
//     Emails are trimmed and lower-cased; contacts get numeric string ids that
//     never change. Values are checked against the property definitions:
//     PROPERTY_DOESNT_EXIST, INVALID_EMAIL (RFC 2822, no quotes, a real TLD),
//     INVALID_INTEGER for numbers, INVALID_OPTION for enumerations
//     (semicolon lists for checkbox), dates, booleans, READ_ONLY_VALUE; ""
//     or null clears a value. A failed input is reported in a 207 with
//     numErrors and errors[] (VALIDATION_ERROR, "Property values were not
//     valid: […]" with the legacy results embedded, errors[].code and
//     context.propertyName, context.ids and objectWriteTraceId) while the
//     valid inputs are applied; all valid is a 200. Results carry id, new,
//     properties, createdAt, updatedAt, archived, and come in record-id
//     order, not input order: HubSpot does not promise input order. A batch
//     is applied atomically, so the same email sent concurrently never makes
//     two contacts.
//   - GET /crm/v3/objects/contacts/{id} by record id, or ?idProperty=email or a
//     unique property; properties= picks the properties (default: createdate,
//     email, firstname, hs_object_id, lastmodifieddate, lastname; unknown
//     names ignored, unset ones null); 404 OBJECT_NOT_FOUND otherwise.
//   - POST /crm/v3/objects/contacts/search: filterGroups (ORed groups of ANDed
//     filters; EQ, NEQ, LT, LTE, GT, GTE, IN, NOT_IN, HAS_PROPERTY,
//     NOT_HAS_PROPERTY; strings compare case-insensitively, numbers
//     numerically), properties, one sort, limit 1..200 (default 10), after as
//     an offset with paging.next.after, at most 10,000 results deep, 5 groups
//     of 6 filters and 18 in all. Options.SearchIndexDelay hides contacts
//     newer than the delay, like HubSpot's index lag that makes
//     search-then-create race.
//   - Properties: POST /crm/v3/properties/contacts → 201 with the definition,
//     409 OBJECT_ALREADY_EXISTS ("Property named 'x' already exists.") when
//     the name is taken, 400 for a bad name, type/fieldType pair, missing
//     group, unique flag on a type that cannot be unique, or more than
//     MaxUniqueProperties unique properties. GET …/{name} → 200 or 404; GET
//     lists all; POST …/groups creates a property group. Default properties
//     (email, firstname, lastname, phone, company, lifecyclestage with its
//     stages, hs_lead_status, …) and groups exist from the start.
//   - POST /oauth/v2/private-apps/get/access-token-info {"tokenKey": …}:
//     the private-app token's userId, hubId (Options.PortalID), appId and
//     the scopes it holds, sorted. It needs no scope and reads the token
//     from the body, not the Authorization header, as HubSpot documents;
//     rate limits and faults do not apply to it. HubSpot does not document
//     its answer to an unknown token: here it is the 401 of every other
//     endpoint.
//   - Rate limits: a rolling 10-second window (DefaultTenSecondLimit),
//     optional per-second limit, the search endpoint's own per-second limit
//     and a daily budget that resets at midnight in Options.Location. Every
//     authenticated response carries X-HubSpot-RateLimit-Max, -Remaining,
//     -Interval-Milliseconds (10000), -Daily and -Daily-Remaining (and
//     -Secondly, -Secondly-Remaining when a per-second limit is set). Over a
//     limit: 429 {"status":"error","message":"You have reached your
//     ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":
//     "TEN_SECONDLY_ROLLING"|"SECONDLY"|"DAILY","correlationId","requestId"}.
//     Retry-After only when Options.RetryAfter is set, since HubSpot does not
//     promise it. Time comes from Options.Now, so tests advance a fake clock.
//   - Faults: FailNext, FlakyRate (502, 503 and 429 mixed) and SetLatency.
//     Gateway errors (502, 503, 504) have an HTML body, as the edge in front
//     of HubSpot answers; a client must not assume error bodies are JSON.
//   - State for assertions: Contacts, ContactByEmail, ContactByID, Property,
//     Requests; seeding with SeedContact and SeedProperty.
//   - State between runs: MarshalState, MarshalChanges, UnmarshalState and
//     Changes, which a statefile.Keeper uses to keep the account in a file
//     (a snapshot plus a journal of changed records); Options.UniqueIDs
//     derives the first record id from the clock so a restart without that
//     file never reissues an id.
//
// What it knowingly does not emulate:
//
//   - Other endpoints: single create/update/archive, list, batch
//     create/read/update/archive, property update/archive (501 saying so);
//     associations and propertiesWithHistory (400 saying so); full-text
//     search (query), BETWEEN and the token operators (400).
//   - Exact wording of some messages HubSpot does not document (idProperty
//     and duplicate-id 400s, unique-value conflicts, date and boolean
//     errors, property-definition 400s): categories and codes follow
//     HubSpot's, texts are close but may differ. Clients must key on status,
//     category and code, never on message text.
//   - Whether HubSpot's batch upsert answers 207 for inputs without
//     objectWriteTraceId: HubSpot documents multi-status for batch create
//     only when every input has one. The default here is per-input 207;
//     Options.MultiStatusNeedsTraceIDs makes batches without trace ids
//     all-or-nothing (400, nothing written), the stricter reading.
//   - Lifecycle-stage rules (HubSpot does not move a contact's stage
//     backwards unless it is cleared first), merges, email-format edge cases
//     beyond the checks above (the full IANA TLD list), property value
//     length limits, hubspot_owner_id and other externally-optioned
//     properties, per-app versus per-account limit buckets (one bucket
//     here), search responses possibly lacking the rate-limit headers, the
//     423 Locked answer to bursts of upserts on one record, and the
//     date-versioned /crm/objects/2026-03 paths.
//
// All methods are safe for concurrent use.
package hubspot
