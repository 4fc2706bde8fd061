// Package wire names the subjects and message headers that make up the hub's
// public contract on NATS. Internal subscribers may rely on every name here;
// names change only compatibly (add, never rename or repurpose).
//
// Raw intake: every verified Stripe webhook is stored once on
// `stripe.events.<event type>` (for example `stripe.events.invoice.paid`),
// with the exact request bytes as the message data and the headers below.
// The subjects of the protobuf contracts (billing, crm, support, dlq) and
// their message types are in package subjects.
package wire

// Subject prefixes and wildcards.
const (
	StripeEventsPrefix = "stripe.events."
	StripeEventsAll    = "stripe.events.>"
	BillingAll         = "billing.>"
	CRMAll             = "crm.>"
	SupportAll         = "support.>"
	DLQPrefix          = "dlq."
	DLQAll             = "dlq.>"
)

// Operator commands, core NATS request/reply (not stored in a stream): the
// operator (the console and status API, logged in as the operator's NATS
// identity) asks identity to link an unlinked payer's record to a
// customer. The request carries HeaderOperatorSig; identity replies on a
// subject under OpsLinkReplyPrefix, which only identity may publish to and
// only the operator may read.
const (
	OpsLinkCustomer    = "ops.identity.link"
	OpsLinkReplyPrefix = "ops.identity.link.reply."
	// HeaderOperatorSig is the operator's Ed25519 signature of a command
	// (opsauth.SignCommand), base64.
	HeaderOperatorSig = "Switchyard-Operator-Sig"
)

// HeaderType names the protobuf message type of every message the hub
// publishes on a contract subject (billing, crm, support, dlq): its proto
// full name, for example `switchyard.billing.v1.PaymentFailed`. The subject
// already determines the type (package subjects); the header lets a
// subscriber that reads several subjects, or a tool that only sees
// headers, pick the decoder without a subject table. It is not set on raw
// intake (stripe.events.>), whose data is Stripe's JSON, and messages stored
// before it existed lack it: fall back to the subject.
const HeaderType = "Switchyard-Type"

// StripeEventSubject returns the subject for a Stripe event type. The type must
// already be validated (lower-case dot-separated tokens).
func StripeEventSubject(eventType string) string { return StripeEventsPrefix + eventType }

// Headers on raw intake messages. Nats-Msg-Id (JetStream's dedup key) is the
// Stripe event id; traceparent/tracestate carry W3C trace context.
const (
	HeaderMsgID         = "Nats-Msg-Id"
	HeaderEventType     = "Stripe-Event-Type"
	HeaderAPIVersion    = "Stripe-Api-Version"
	HeaderLivemode      = "Stripe-Livemode"      // "true" | "false"
	HeaderSignature     = "Stripe-Signature"     // raw header as received, for re-verification
	HeaderEventCreated  = "Stripe-Event-Created" // event.created, unix seconds
	HeaderRequestID     = "Switchyard-Request-Id"
	HeaderReceivedAt    = "Switchyard-Received-At"    // RFC 3339, nanoseconds, UTC
	HeaderVersionStatus = "Switchyard-Version-Status" // "pinned" | "mismatch"
)
