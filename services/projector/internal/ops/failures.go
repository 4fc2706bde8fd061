package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// customerClue is what a dead letter's message says about its customer
// when the dead letter names none (deadletter.Entry.CustomerID is ""): ids
// the projection can resolve to a customer.
type customerClue struct {
	StripeEventID string // a Stripe event's id (evt_…), or a domain event's Stripe source
	SourceEventID string // an outcome's billing event
	StripeID      string // a Stripe customer id (cus_…)
}

// clueOf reads a dead letter's message for its customer. A raw Stripe event
// names its customer only sometimes (data.object.customer on invoices and
// subscriptions, as an id or expanded; the object itself for customer.*
// events; not at all on a dispute, a guest checkout or a charge without a
// customer), but always its own id, which the projection can resolve once
// identity has handled it. A billing event or an outcome gives its Stripe
// ids and its cause; its canonical id, if any, is already the entry's
// CustomerID (deadletter.CustomerOf).
func clueOf(d *consumer.DeadLetter) customerClue {
	if strings.HasPrefix(d.OriginalSubject, wire.StripeEventsPrefix) {
		var ev struct {
			ID   string `json:"id"`
			Data struct {
				Object struct {
					ID       string          `json:"id"`
					Object   string          `json:"object"`
					Customer json.RawMessage `json:"customer"`
				} `json:"object"`
			} `json:"data"`
		}
		var k customerClue
		if json.Unmarshal(d.OriginalData, &ev) == nil {
			k.StripeEventID = ev.ID
			obj := ev.Data.Object
			var id string
			var expanded struct {
				ID string `json:"id"`
			}
			switch {
			case json.Unmarshal(obj.Customer, &id) == nil && id != "":
				k.StripeID = id
			case json.Unmarshal(obj.Customer, &expanded) == nil && expanded.ID != "":
				k.StripeID = expanded.ID
			case obj.Object == "customer":
				k.StripeID = obj.ID
			}
		}
		if k.StripeEventID == "" && strings.HasPrefix(d.OriginalMsgID, "evt_") {
			k.StripeEventID = d.OriginalMsgID // Nats-Msg-Id is the Stripe event id
		}
		return k
	}
	m, err := subjects.Decode(d.OriginalSubject, d.OriginalData)
	if err != nil {
		return customerClue{}
	}
	switch ev := m.(type) {
	case subjects.BillingEvent:
		meta := ev.GetMeta()
		k := customerClue{StripeID: meta.GetStripeCustomerId()}
		if ids := meta.GetSourceEventIds(); len(ids) > 0 {
			k.StripeEventID = ids[0]
		}
		return k
	case view.Outcome:
		return customerClue{SourceEventID: ev.GetSourceEventId()}
	}
	return customerClue{}
}

// customerLink is a failure's customer as the console shows it.
type customerLink struct {
	ID   string // a canonical id, or a Stripe customer id; "" = unknown
	Href string // the customer's page (or the search, for a Stripe id several customers share); "" = not linked
	Note string // why it is not linked
}

func linkToCustomer(id string) customerLink {
	return customerLink{ID: id, Href: "/console/customers/" + url.PathEscape(id)}
}

// failureCustomers resolves the customers of one page's dead letters,
// each clue once.
type failureCustomers struct {
	c    *Console
	seen map[customerClue]customerLink
}

func (c *Console) failureCustomers() *failureCustomers {
	return &failureCustomers{c: c, seen: map[customerClue]customerLink{}}
}

// of returns the customer of e: the canonical id the dead letter names
// (its envelope's, or its message's), else the customer the projection has
// for its Stripe event (or for its cause), else the one the projection
// links to its Stripe customer id. A Stripe customer id the projection
// does not know is shown unlinked; with none of these the customer is
// unknown (the zero link). A lookup that fails is logged and counts as not
// found: the page still answers.
func (f *failureCustomers) of(ctx context.Context, e deadletter.Entry) customerLink {
	if e.CustomerID != "" {
		return linkToCustomer(e.CustomerID)
	}
	k := clueOf(e.DeadLetter)
	if l, ok := f.seen[k]; ok {
		return l
	}
	l := f.resolve(ctx, k)
	f.seen[k] = l
	return l
}

func (f *failureCustomers) resolve(ctx context.Context, k customerClue) customerLink {
	for _, id := range []string{k.StripeEventID, k.SourceEventID} {
		if id == "" {
			continue
		}
		owner, err := f.c.store.CustomerOfStripeEvent(ctx, id)
		if err == nil {
			return linkToCustomer(owner)
		}
		if !errors.Is(err, view.ErrNotFound) {
			f.c.log.WarnContext(ctx, "failure's customer: lookup by event", "event_id", id, "error", err)
		}
	}
	if k.StripeID == "" {
		return customerLink{}
	}
	docs, err := f.c.store.FindByStripeID(ctx, k.StripeID)
	if err != nil {
		f.c.log.WarnContext(ctx, "failure's customer: lookup by Stripe customer", "stripe_customer_id", k.StripeID, "error", err)
		return customerLink{ID: k.StripeID}
	}
	switch len(docs) {
	case 0:
		return customerLink{ID: k.StripeID, Note: "not in the projection yet"}
	case 1:
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(docs[0], &v) == nil && v.ID != "" {
			return linkToCustomer(v.ID)
		}
	}
	return customerLink{ID: k.StripeID, Href: "/console/customers?q=" + url.QueryEscape(k.StripeID)}
}
