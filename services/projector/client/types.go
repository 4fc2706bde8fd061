package client

import "time"

// The status API's documents (openapi.json). The projector writes these
// same types: the view package's View is this View, so the API and this
// client cannot drift apart.

// View is one canonical customer as the status API returns it. It is a pure
// function of the customer's set of entries (Fold). UnverifiedEmails were
// typed by whoever paid (a card form, a receipt email, a guest checkout):
// shown labelled, never the customer's email.
type View struct {
	CustomerID        string             `json:"id"`
	Email             string             `json:"email,omitempty"`
	UnverifiedEmails  []string           `json:"unverified_emails"`
	Name              string             `json:"name,omitempty"`
	StripeCustomerIDs []string           `json:"stripe_customer_ids"`
	CRMContactID      string             `json:"crm_contact_id,omitempty"`
	MergedIDs         []string           `json:"merged_ids"`
	Livemode          bool               `json:"livemode"`
	State             string             `json:"state"`
	States            []string           `json:"states"`
	Plan              string             `json:"plan,omitempty"`
	Status            string             `json:"subscription_status,omitempty"`
	MRR               int64              `json:"mrr"`
	Currency          string             `json:"currency,omitempty"`
	Subscriptions     []SubscriptionView `json:"subscriptions"`
	LastPayment       *Payment           `json:"last_payment,omitempty"`
	CRM               CRMStatus          `json:"crm"`
	OpenTickets       []Ticket           `json:"open_tickets"`
	FailedTickets     []Ticket           `json:"failed_tickets"`
	OpenDisputes      []string           `json:"open_disputes"`
	LastEventAt       time.Time          `json:"last_event_at"`
	Events            int                `json:"events"`
}

// SubscriptionView is a subscription's newest known state.
type SubscriptionView struct {
	ID                string     `json:"id"`
	Status            string     `json:"status"`
	Plan              string     `json:"plan"`
	PriceID           string     `json:"price_id,omitempty"`
	Quantity          int64      `json:"quantity"`
	MRR               int64      `json:"mrr"`
	Currency          string     `json:"currency,omitempty"`
	Interval          string     `json:"interval,omitempty"`
	CurrentPeriodEnd  *time.Time `json:"current_period_end,omitempty"`
	TrialEnd          *time.Time `json:"trial_end,omitempty"`
	CancelAtPeriodEnd bool       `json:"cancel_at_period_end"`
	CancelAt          *time.Time `json:"cancel_at,omitempty"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// Payment is the newest payment attempt.
type Payment struct {
	Status        string     `json:"status"` // succeeded | failed
	Amount        int64      `json:"amount"`
	Currency      string     `json:"currency"`
	InvoiceID     string     `json:"invoice_id,omitempty"`
	Attempt       int32      `json:"attempt"`
	At            time.Time  `json:"at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	Final         bool       `json:"final,omitempty"`
	FailureCode   string     `json:"failure_code,omitempty"`
	EventID       string     `json:"event_id"`
}

// CRMStatus is where the CRM contact stands.
type CRMStatus struct {
	// Status: synced, pending (no outcome yet), pending_retry, failed, or
	// not_applicable (no billing event with an email yet).
	Status        string     `json:"status"`
	SourceEventID string     `json:"source_event_id,omitempty"` // the newest billing event the CRM should reflect
	SourceSubject string     `json:"source_subject,omitempty"`  // and its subject
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	ErrorClass    string     `json:"error_class,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	LastSyncedAt  *time.Time `json:"last_synced_at,omitempty"`
	// FailedEventIDs are billing events whose sync gave up and that no
	// later sync has covered (a replay from the dead letters fixes them).
	FailedEventIDs []string `json:"failed_event_ids"`
}

// Ticket is a support automation outcome.
type Ticket struct {
	TicketID      string    `json:"ticket_id,omitempty"`
	Rule          string    `json:"rule"`
	Priority      string    `json:"priority"`
	Status        string    `json:"status"` // open | failed
	At            time.Time `json:"at"`
	SourceEventID string    `json:"source_event_id"`
	Reason        string    `json:"reason,omitempty"`
	Critical      bool      `json:"critical,omitempty"`
}

// TimelineEntry is one line of a customer's timeline.
type TimelineEntry struct {
	EventID        string    `json:"event_id"`
	At             time.Time `json:"at"`
	Kind           string    `json:"kind"` // billing | crm | support
	Subject        string    `json:"subject"`
	Summary        string    `json:"summary"`
	Status         string    `json:"status"` // ok | pending | failed | info
	SourceEventIDs []string  `json:"source_event_ids"`
	TraceID        string    `json:"trace_id,omitempty"`
	CustomerID     string    `json:"customer_id"` // as published; a merged id for history from before the merge
}

// TimelinePage is a page of a timeline, oldest first unless desc.
type TimelinePage struct {
	CustomerID string          `json:"customer_id"`
	Entries    []TimelineEntry `json:"entries"`
	Next       string          `json:"next,omitempty"` // cursor for the next page
}

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	Events          int               `json:"events"`     // messages projected
	Duplicates      int               `json:"duplicates"` // messages whose event id was already projected
	Skipped         int               `json:"skipped"`    // messages that cannot be projected (logged)
	Customers       int               `json:"customers"`
	CaughtUp        int               `json:"caught_up"` // messages stored while rebuilding, applied during the swap
	Seconds         float64           `json:"seconds"`
	EventsPerSecond float64           `json:"events_per_second"`
	LastSequences   map[string]uint64 `json:"last_sequences"` // per stream, the last message included
}

// UnlinkedPayer is a customer record with no Stripe customer.
type UnlinkedPayer struct {
	CustomerID       string      `json:"id"`
	State            string      `json:"state"`
	LastEventAt      time.Time   `json:"last_event_at"`
	UnverifiedEmails []string    `json:"unverified_emails"`
	LastPayment      *Payment    `json:"last_payment,omitempty"`
	OpenDisputes     []string    `json:"open_disputes"`
	Candidates       []Candidate `json:"candidates"`
}

// Candidate is a customer an unlinked payer may be: its verified email is
// one the payer typed. Only a candidate to check, never linked by itself.
type Candidate struct {
	CustomerID        string   `json:"id"`
	Email             string   `json:"email"`
	Name              string   `json:"name,omitempty"`
	StripeCustomerIDs []string `json:"stripe_customer_ids"`
}

// Overview is the pipeline's health on one screen; also what
// `switchyard status` prints. A figure that could not be read is left
// zero and its problem listed in Problems.
type Overview struct {
	At                time.Time         `json:"at"`
	IntakeLastHour    int               `json:"intake_last_hour"`           // Stripe events stored
	IntakeLast5m      int               `json:"intake_last_5m"`             // Stripe events stored
	LastEventAt       time.Time         `json:"last_event_at"`              // newest Stripe event stored
	WebhookResults    map[string]int64  `json:"webhook_results"`            // gateway counts by result since it started
	WebhookFailures   int64             `json:"webhook_failures"`           // of those, not accepted and not duplicate
	Consumers         []ConsumerLag     `json:"consumers"`                  // every durable consumer
	DLQByClass        map[string]int    `json:"dlq_by_class"`               // open dead letters
	DLQTotal          int               `json:"dlq_total"`                  // open failures
	CRMSynced24h      int               `json:"crm_synced_24h"`             // crm.contact.synced in the last 24 h
	CRMFailed24h      int               `json:"crm_failed_24h"`             // crm.contact.failed
	CRMRetries24h     int               `json:"crm_retries_24h"`            // crm.contact.pending_retry
	CRMSuccessRate    float64           `json:"crm_success_rate"`           // synced / (synced + failed), 1 with none
	Tickets24h        int               `json:"tickets_24h"`                // support.ticket.opened
	TicketFailed24h   int               `json:"ticket_failed_24h"`          // support.ticket.failed
	TicketLatencyP50  float64           `json:"ticket_latency_p50_seconds"` // Stripe event received → ticket open
	TicketLatencyP95  float64           `json:"ticket_latency_p95_seconds"`
	TicketsTimed      int               `json:"tickets_timed_24h"`  // tickets the latencies cover (0: the latencies are not known)
	CustomersByState  map[string]int    `json:"customers_by_state"` // primary state's kind, evaluated now → customers
	Streams           map[string]uint64 `json:"streams"`            // messages per stream
	Problems          []string          `json:"problems"`
	Healthy           bool              `json:"healthy"` // no problems, nothing stalled, no open failures
	JaegerConfigured  bool              `json:"-"`
	GatewayConfigured bool              `json:"-"`
}

// ConsumerLag is one durable consumer's backlog.
type ConsumerLag struct {
	Stream      string    `json:"stream"`
	Name        string    `json:"name"`
	Pending     uint64    `json:"pending"`     // stored, not yet delivered
	AckPending  int       `json:"ack_pending"` // delivered, not yet acked
	Redelivered int       `json:"redelivered"`
	LastActive  time.Time `json:"last_active"`
}

// Digest is the day in numbers, for the daily Slack digest.
type Digest struct {
	From              time.Time      `json:"from"`
	To                time.Time      `json:"to"`
	StripeEvents      int            `json:"stripe_events"`      // Stripe events stored
	DriftHealed       int            `json:"drift_healed"`       // of those, published by switchyard reconcile
	BillingEvents     int            `json:"billing_events"`     // domain events projected
	AutomationsDone   int            `json:"automations_done"`   // CRM contacts synced + tickets opened
	AutomationsFailed int            `json:"automations_failed"` // CRM syncs and tickets given up on
	FailuresOpen      int            `json:"failures_open"`      // open dead letters now
	CustomersByState  map[string]int `json:"customers_by_state"` // now
	Problems          []string       `json:"problems"`
}

// LinkResult answers POST /v1/customers/{id}/link.
type LinkResult struct {
	GuestID    string `json:"guest_id"`
	CustomerID string `json:"customer_id"`
	Already    bool   `json:"already,omitempty"`
	By         string `json:"by"`
}

// ActionResult answers a dead-letter action.
type ActionResult struct {
	Seq    uint64 `json:"seq"`
	Action string `json:"action"` // replay | discard
	By     string `json:"by"`
	Result string `json:"result"`
}
