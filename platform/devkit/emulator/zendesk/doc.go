// Package zendesk is a local, in-memory emulator of the Zendesk Support API
// tickets endpoints the hub's support service uses. It is an http.Handler,
// so tests mount it on httptest and `switchyard dev` on a real listener; an
// adapter reaches it by changing only its base URL.
//
// What it emulates, as Zendesk documents or is observed to do:
//
//   - Authentication: `Authorization: Basic base64("<email>/token:<token>")`
//     with the configured agent (SetCredentials rotates it). Anything else
//     gets 401 {"error":"Couldn't authenticate you"}; a forbidden agent
//     (Options.Forbidden, SetForbidden) gets 403 {"error":"Forbidden",…}.
//   - POST /api/v2/tickets: 201, the ticket and its audit, and a Location
//     header. Defaults: status "new" ("open" once there is an assignee),
//     description = the first comment, which is public unless
//     comment.public is false, authored by the API agent; submitter = the
//     agent; requester = requester_id, or the user with requester.email
//     (created as an end user when new; a new user needs a name), or the
//     agent. An assignee brings its default group when group_id is absent.
//     Unknown attributes are ignored, as Zendesk's permissive API does.
//   - 422 {"error":"RecordInvalid","description":"Record validation
//     errors","details":{…}} for: priority (urgent|high|normal|low), type
//     (problem|incident|question|task) and status
//     (new|open|pending|hold|solved|closed) outside their sets or of the
//     wrong JSON type ("<Field>: is invalid", InvalidValue); no comment
//     body ("base": "Description: cannot be blank", BlankValue); a group_id
//     that names no group ("group"); an assignee_id that names no agent
//     ("assignee", "Assignee: is invalid") or one outside the ticket's group
//     ("Assignee: is not a member of the group"); a requester without a
//     name or with a malformed email; any change to a closed ticket
//     ("status": "Status: closed prevents ticket update"). Nothing is stored
//     when a request is invalid.
//   - GET /api/v2/tickets/{id} ({"ticket":…}; 404 {"error":"RecordNotFound",
//     "description":"Not found"}), GET /api/v2/tickets/{id}/comments.
//   - GET /api/v2/tickets, by id ascending, optionally filtered by
//     external_id (which is not unique: every match is listed). Offset
//     pagination (page, per_page ≤ 100; "tickets", "count", "next_page",
//     "previous_page") by default; cursor pagination with page[size] ≤ 100,
//     page[after], page[before] ("meta": has_more, after_cursor,
//     before_cursor; "links": next, prev). links.next is set on every
//     non-empty page, so a client must loop on meta.has_more, as Zendesk
//     tells clients to.
//   - PUT /api/v2/tickets/{id}: changes only the attributes sent; tags
//     replace the whole list, additional_tags/remove_tags edit it; a comment
//     is appended; null clears priority, type, group and assignee. Moving a
//     ticket to a group its assignee is not in unassigns it (as the agent
//     UI does; the API's exact reaction is a guess).
//   - /api/v2/tickets/{id}/tags with {"tags":[…]}: GET shows, POST sets, PUT
//     adds, DELETE removes; each answers {"tags":[…]}. Closed tickets refuse.
//   - GET /api/v2/users/me: {"user":…} for the agent the credentials belong
//     to (id, url, name, email, timestamps, active, verified, role "agent"
//     or "admin", default_group_id, suspended: a subset of Zendesk's user
//     object). Zendesk allows the endpoint to anonymous callers: a request
//     with no Authorization header gets 200 and the anonymous user (null
//     id, role "end-user"), so a client must check the role, not the
//     status; wrong credentials get the 401 of every endpoint.
//   - Tags are stored as Zendesk stores them: lower-cased, split on white
//     space ("Needs Review" becomes "needs" and "review"; Zendesk tags
//     cannot hold spaces, so join words with underscores), duplicates
//     dropped, first-seen order kept.
//   - Paths may end in ".json". Unknown paths get 404 {"error":
//     "InvalidEndpoint","description":"Not found"}.
//   - Rate limit: a per-minute account budget (Options.RateLimit, default
//     DefaultRateLimit = 200, the smallest plan's) in fixed windows on the
//     Options.Now clock. Every response carries X-Rate-Limit and
//     X-Rate-Limit-Remaining (and the ratelimit-limit/-remaining/-reset
//     trio of the Ticketing APIs). Over budget: 429, Retry-After with the
//     seconds until the window resets, and Zendesk's plain-text body
//     "Number of allowed API requests per minute exceeded". Unauthenticated
//     requests spend nothing.
//
// Fault injection, all for authenticated requests and changing nothing:
// FailNext (a queue of statuses with Zendesk-shaped bodies), FlakyRate
// (random 500/502/503/429, seeded), SetLatency, SetInjectedRetryAfter. The
// crash hooks (Options.CrashAfterCreate, CrashNextCreates) are the one
// exception on purpose: the ticket is stored, then the connection is dropped
// or 500 is answered, as when Zendesk commits and the answer is lost. Go's
// http.Transport does not retry a POST on a dropped connection unless the
// request carries an Idempotency-Key or X-Idempotency-Key header.
//
// State for assertions: Tickets, Ticket, TicketsByExternalID, Users,
// UserByEmail, Requests (every exchange, logged before its answer is sent,
// status 0 when none was). Seeding: Options.Groups/Agents, AddGroup,
// AddAgent, SeedTicket.
//
// State between runs: MarshalState, MarshalChanges, UnmarshalState and
// Changes, which a statefile.Keeper uses to keep the account in a file (a
// snapshot plus a journal of changed records); Options.UniqueIDs
// derives the first ids from the clock so a restart without that file never
// reissues a ticket or user id.
//
// What it knowingly does not emulate:
//
//   - Search (/api/v2/search): real search is eventually consistent (a
//     ticket created a moment ago may not be found), so a dedupe lookup must
//     use the list filter by external_id, which this serves.
//   - Password and OAuth authentication, roles beyond agent/end user,
//     organizations, ticket forms, brands, custom field definitions (custom
//     fields are stored as sent, unchecked), attachments, followers/CCs,
//     merging, deleting, bulk and async endpoints (create_many, jobs),
//     triggers and automations (besides "new becomes open when assigned"),
//     and the solved→closed timer. Solving an unassigned ticket does not
//     auto-assign it.
//   - Endpoint-specific limits (e.g. the List Tickets limit with its
//     zendesk-ratelimit-tickets-index header, the per-ticket update limit)
//     and the offset-pagination cap of 100 pages; sorting parameters are
//     ignored (always id ascending).
//   - Bodies whose shape Zendesk does not document are best guesses: a body
//     that is not JSON (400 "InvalidJSON"), a missing envelope key (400
//     "ParameterMissing", Rails' message), bad pagination parameters (400
//     "InvalidPaginationParameter"), 5xx (plain text; 503 with Retry-After).
//     Known paths with methods not emulated answer 501 "NotEmulated", which
//     Zendesk never does.
package zendesk
