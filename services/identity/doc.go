// Package identity is Switchyard's identity service: it consumes every
// verified Stripe event (stripe.events.>), maps the Stripe customer id,
// the normalised email and related object ids (charges, invoices,
// subscriptions, payment intents) to one canonical customer id, and
// publishes the billing.> domain events other services consume instead of
// parsing Stripe.
//
// Only verified sources set identity: a customer's email (its profile, the
// EventMeta.email subscribers key on, an email link) comes only from the
// Stripe Customer object. An email a payer typed — a card's billing
// details, a receipt email, a guest checkout — or an invoice's frozen copy
// is carried as EventMeta.unverified_email, never a key or a link, and a
// charge of no Stripe customer is linked only through Stripe's own
// relations (its invoice, its payment intent), else it is a customer of
// its own. Text read from Stripe is normalised where it is read
// (normalise.go), so nothing a store or vendor cannot hold leaves identity
// and no text is a reason to dead-letter an event.
//
// Resolution is safe under concurrency and any delivery order: the
// identifiers of an event are locked (PostgreSQL advisory locks, in sorted
// order) for the transaction that looks them up and links them, so 50
// events for one new customer arriving at once create one canonical id; an
// invoice before its customer, or a dispute naming only its charge, links
// up when the other identifiers arrive. Per Stripe object, the version
// applied last (event.created, then status precedence on a same-second tie)
// decides whether an event may change state: a stale event never regresses
// it (identity's profile data and versions); the domain event a late Stripe
// event yields is still published, as a fact with its occurred_at, so any
// delivery order yields the same set of domain events and subscribers apply
// the same newest-wins rule to their own state. Domain events carry message
// ids derived from the source event, so reprocessing publishes the same ids
// and downstream dedup absorbs them.
package identity
