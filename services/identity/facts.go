package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/stripescan"
)

// Facts is what identity reads from one Stripe event: who it is about and
// which object version it carries. Every field is read from a validated,
// typed Stripe field; free-form metadata is never read. Every text field
// is normalised (see normalise.go): ids that cannot be Stripe's are
// empty, names are clean single lines of at most maxNameRunes, emails are
// valid or empty.
//
// Only verified sources set identity: Email (which becomes the profile
// email, the CRM key, the support requester and a link) comes only from
// the Stripe Customer object. What a payer typed is UnverifiedEmail: kept
// for showing, never a key or a link.
type Facts struct {
	EventID, EventType string
	// Created is event.created (one-second resolution), UTC.
	Created time.Time
	// ReceivedAt is when the hub received the event (the gateway's
	// Switchyard-Received-At header), zero if unknown. It is not in the
	// event's bytes: Handle sets it from the message, not ExtractFacts.
	ReceivedAt time.Time
	Livemode   bool
	APIVersion string
	// ObjectKind and ObjectID are data.object.object and data.object.id
	// ("" when absent, e.g. invoice.upcoming has no id).
	ObjectKind, ObjectID string
	// StripeCustomerID is the cus_ id the object names: the customer
	// object's own id, or object.customer (an id or an expanded object);
	// "" if none.
	StripeCustomerID string
	// Email is the Stripe Customer object's email, normalised (trimmed,
	// lower case) and valid; "" if none or invalid. Sources: customer.email
	// of a customer event, and the email of a customer object expanded in
	// any other object (subscription, invoice, charge, checkout session,
	// payment intent).
	Email string
	// UnverifiedEmail is a contact email the event's object carries from a
	// source nobody verified, normalised and valid; "" if none. Sources, the
	// first one set: a checkout session's customer_details.email, then its
	// customer_email; a charge's billing_details.email, then its
	// receipt_email (also the charge of a dispute or refund, when
	// expanded); a payment intent's receipt_email; an invoice's
	// customer_email.
	//
	// invoice.customer_email is unverified too, although Stripe copies it
	// from the Customer object: the copy is frozen when the invoice is
	// finalised, so an old invoice (Stripe retries for three days,
	// reconcile reads 30 days back) carries an email the customer may have
	// changed since; an invoice with no customer (a guest payment's
	// invoice) holds what the guest typed; and an invoice always names its
	// Stripe customer by id, whose own events give the verified email.
	UnverifiedEmail string
	// Name is customer.name, checkout customer_details.name, or the name of
	// an expanded customer object.
	Name string
	// ChargeID, InvoiceID, SubscriptionID and PaymentIntentID are the
	// related object ids the event carries, so that disputes and refunds
	// can find their customer through a charge. For an object of one of
	// these kinds the field of its own kind is its own id (a
	// charge.refunded event has ChargeID = the charge).
	ChargeID, InvoiceID, SubscriptionID, PaymentIntentID string
	// ObjectStatus is data.object.status if present.
	ObjectStatus string

	// object is data.object decoded as its stripe-go type (a pointer), for
	// Derive; nil for kinds that name no customer.
	object any
}

// ExtractFacts parses the raw Stripe event bytes (as stored by the gateway)
// with stripe-go. Errors are permanent (errclass.Permanent): bytes that do
// not decode as an event, or whose data.object does not decode as the type
// it names, cannot succeed on a retry.
//
// The API version is not checked: the gateway accepts events of any
// version and records it; typed fields that differ between versions are
// rare, and an object that no longer decodes fails here, visibly.
func ExtractFacts(raw []byte) (Facts, *stripe.Event, error) {
	// One pass (the gateway's reader) validates the bytes and finds the
	// envelope and data.object's head: decoding is most of identity's CPU,
	// and encoding/json validated the body again for each struct decoded
	// from it. data.object is then decoded once, as its typed object, and
	// Derive reuses it. The returned event carries data.object as Data.Raw
	// only (Data.Object is nil).
	sc, err := stripescan.Scan(raw)
	if err != nil {
		return Facts{}, nil, errclass.Permanent(fmt.Errorf("decode stripe event: %w", err))
	}
	ev, err := envelope(&sc)
	switch {
	case err != nil:
		return Facts{}, nil, errclass.Permanent(fmt.Errorf("decode stripe event: %w", err))
	case ev.ID == "":
		return Facts{}, nil, errclass.Permanent(errors.New("decode stripe event: no id"))
	case ev.Type == "":
		return Facts{}, nil, errclass.Permanent(fmt.Errorf("decode stripe event %s: no type", ev.ID))
	case len(sc.DataObject) == 0 || sc.DataObject[0] != '{':
		return Facts{}, nil, errclass.Permanent(fmt.Errorf("decode stripe event %s: no data.object", ev.ID))
	}
	head := &sc.Obj
	f := Facts{
		EventID:      ev.ID,
		EventType:    string(ev.Type),
		Created:      time.Unix(ev.Created, 0).UTC(),
		Livemode:     ev.Livemode,
		APIVersion:   ev.APIVersion,
		ObjectKind:   jsonString(head.Object),
		ObjectID:     jsonString(head.ID),
		ObjectStatus: jsonString(head.Status),
	}
	if err := f.readObject(ev.Data.Raw); err != nil {
		return Facts{}, nil, errclass.Permanent(fmt.Errorf("decode %s of stripe event %s: %w", f.ObjectKind, ev.ID, err))
	}
	f.normalise()
	return f, ev, nil
}

// normalise makes every text field of f one that identity's store and
// every subscriber can hold (see normalise.go). It is where identity's
// own state (links, profile, versions) is normalised; the domain events'
// text is normalised by Derive with the same functions.
func (f *Facts) normalise() {
	for _, id := range []*string{&f.ObjectID, &f.StripeCustomerID, &f.ChargeID, &f.InvoiceID, &f.SubscriptionID, &f.PaymentIntentID} {
		*id = cleanID(*id)
	}
	f.ObjectKind, f.ObjectStatus = cleanID(f.ObjectKind), cleanID(f.ObjectStatus)
	f.Email, f.UnverifiedEmail = cleanEmail(f.Email), cleanEmail(f.UnverifiedEmail)
	f.Name = cleanText(f.Name, maxNameRunes)
}

// jsonString is the string a scanned JSON value holds; "" for any other
// value.
func jsonString(v []byte) string {
	s, _ := stripescan.String(v)
	return s
}

// envelope reads the event's own fields from sc as encoding/json would
// decode them into a stripe.Event: a value of the wrong JSON type is an
// error, null or absent is the zero value. A duplicated key is its last
// occurrence (stripe-go's EventData does the same with a duplicated
// "data"; encoding/json would merge a duplicated previous_attributes).
// Stripe sends neither.
func envelope(sc *stripescan.Event) (*stripe.Event, error) {
	ev := &stripe.Event{Data: &stripe.EventData{Raw: sc.DataObject}}
	var err error
	typ := ""
	for _, field := range []struct {
		name string
		raw  []byte
		to   *string
	}{{"id", sc.ID, &ev.ID}, {"type", sc.Type, &typ}, {"api_version", sc.APIVersion, &ev.APIVersion}} {
		if *field.to, err = text(field.raw, field.name); err != nil {
			return nil, err
		}
	}
	ev.Type = stripe.EventType(typ)
	if !stripescan.IsNull(sc.Created) {
		if ev.Created, err = strconv.ParseInt(string(sc.Created), 10, 64); err != nil {
			return nil, fmt.Errorf("created is not an integer: %s", sc.Created)
		}
	}
	switch string(sc.Livemode) {
	case "", "null", "false":
	case "true":
		ev.Livemode = true
	default:
		return nil, fmt.Errorf("livemode is not true or false: %s", sc.Livemode)
	}
	if !stripescan.IsNull(sc.PreviousAttributes) {
		if err := json.Unmarshal(sc.PreviousAttributes, &ev.Data.PreviousAttributes); err != nil {
			return nil, fmt.Errorf("data.previous_attributes: %w", err)
		}
	}
	return ev, nil
}

// text is the string a scanned JSON value holds, "" for null or absent,
// and an error for any other value.
func text(v []byte, name string) (string, error) {
	if stripescan.IsNull(v) {
		return "", nil
	}
	s, ok := stripescan.String(v)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// readObject fills the customer and link fields from data.object, decoded
// as the stripe-go type its "object" names (and kept for Derive). Kinds
// that name no customer (balance, payout, ...) leave them empty.
func (f *Facts) readObject(raw json.RawMessage) error {
	switch f.ObjectKind {
	case "customer":
		return readAs(f, raw, (*Facts).customerFacts)
	case "subscription":
		return readAs(f, raw, (*Facts).subscriptionFacts)
	case "invoice":
		return readAs(f, raw, (*Facts).invoiceFacts)
	case "charge":
		return readAs(f, raw, (*Facts).chargeFacts)
	case "dispute":
		return readAs(f, raw, (*Facts).disputeFacts)
	case "refund":
		return readAs(f, raw, (*Facts).refundFacts)
	case "checkout.session":
		return readAs(f, raw, (*Facts).checkoutFacts)
	case "payment_intent":
		return readAs(f, raw, (*Facts).paymentIntentFacts)
	}
	return nil
}

// readAs decodes raw as a T, keeps it as f's object and reads it into f
// with read.
func readAs[T any](f *Facts, raw json.RawMessage, read func(*Facts, *T)) error {
	obj := new(T)
	// raw was validated with the envelope: a type that decodes itself
	// (stripe-go's expandable objects) is handed it directly, as
	// json.Unmarshal would after validating it once more.
	var err error
	if u, ok := any(obj).(json.Unmarshaler); ok {
		err = u.UnmarshalJSON(raw)
	} else {
		err = json.Unmarshal(raw, obj)
	}
	if err != nil {
		return err
	}
	f.object = obj
	read(f, obj)
	return nil
}

// customerFacts reads a Customer object: the source of the verified email
// and of the profile.
func (f *Facts) customerFacts(c *stripe.Customer) {
	f.StripeCustomerID, f.Email, f.Name = c.ID, c.Email, c.Name
}

// subscriptionFacts reads a subscription: its customer and latest invoice.
func (f *Facts) subscriptionFacts(s *stripe.Subscription) {
	f.customer(s.Customer)
	f.SubscriptionID = s.ID
	if s.LatestInvoice != nil {
		f.InvoiceID = s.LatestInvoice.ID
	}
}

// invoiceFacts reads an invoice: its customer, its customer_email
// (unverified: see Facts.UnverifiedEmail) and its links.
func (f *Facts) invoiceFacts(in *stripe.Invoice) {
	f.unverified(in.CustomerEmail)
	f.customer(in.Customer)
	f.InvoiceID = in.ID
	f.ChargeID = chargeID(in.Charge)
	f.PaymentIntentID = paymentIntentID(in.PaymentIntent)
	if in.Subscription != nil {
		f.SubscriptionID = in.Subscription.ID
	}
}

// disputeFacts reads a dispute: its charge (customer and email only if
// expanded) and payment intent.
func (f *Facts) disputeFacts(d *stripe.Dispute) {
	if d.Charge != nil {
		f.chargeFacts(d.Charge)
	}
	f.PaymentIntentID = firstNonEmpty(paymentIntentID(d.PaymentIntent), f.PaymentIntentID)
}

// refundFacts reads a refund: its charge (customer and email only if
// expanded) and payment intent.
func (f *Facts) refundFacts(r *stripe.Refund) {
	if r.Charge != nil {
		f.chargeFacts(r.Charge)
	}
	f.PaymentIntentID = firstNonEmpty(paymentIntentID(r.PaymentIntent), f.PaymentIntentID)
}

// checkoutFacts reads a checkout session: what the payer typed (customer
// details first, then customer_email: unverified), its customer and
// links.
func (f *Facts) checkoutFacts(s *stripe.CheckoutSession) {
	if s.CustomerDetails != nil {
		f.unverified(s.CustomerDetails.Email)
		f.Name = s.CustomerDetails.Name
	}
	f.unverified(s.CustomerEmail)
	f.customer(s.Customer)
	f.PaymentIntentID = paymentIntentID(s.PaymentIntent)
	if s.Subscription != nil {
		f.SubscriptionID = s.Subscription.ID
	}
	if s.Invoice != nil {
		f.InvoiceID = s.Invoice.ID
	}
}

// paymentIntentFacts reads a payment intent: its receipt email
// (unverified), its customer and links.
func (f *Facts) paymentIntentFacts(pi *stripe.PaymentIntent) {
	f.unverified(pi.ReceiptEmail)
	f.customer(pi.Customer)
	f.PaymentIntentID = pi.ID
	f.ChargeID = chargeID(pi.LatestCharge)
	if pi.Invoice != nil {
		f.InvoiceID = pi.Invoice.ID
	}
}

// chargeFacts reads a charge: its customer, its unverified email (billing
// details first, then the receipt email) and its links.
func (f *Facts) chargeFacts(ch *stripe.Charge) {
	if ch.BillingDetails != nil {
		f.unverified(ch.BillingDetails.Email)
	}
	f.unverified(ch.ReceiptEmail)
	f.customer(ch.Customer)
	f.ChargeID = ch.ID
	f.PaymentIntentID = paymentIntentID(ch.PaymentIntent)
	if ch.Invoice != nil {
		f.InvoiceID = ch.Invoice.ID
	}
}

// customer takes the id of a customer reference and, when it is expanded,
// its email (the Customer object's: verified) and its name as a fallback.
func (f *Facts) customer(c *stripe.Customer) {
	if c == nil {
		return
	}
	f.StripeCustomerID = c.ID
	f.Email = c.Email
	if strings.TrimSpace(f.Name) == "" {
		f.Name = c.Name
	}
}

// unverified keeps the first valid unverified email offered.
func (f *Facts) unverified(e string) {
	if f.UnverifiedEmail == "" {
		f.UnverifiedEmail = cleanEmail(e)
	}
}

func chargeID(c *stripe.Charge) string {
	if c == nil {
		return ""
	}
	return c.ID
}

func paymentIntentID(pi *stripe.PaymentIntent) string {
	if pi == nil {
		return ""
	}
	return pi.ID
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
