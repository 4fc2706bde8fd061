package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// HandleCRMOutcomes links the CRM contact ids of a pull of
// crm.contact.synced outcomes back to their canonical customers, so "which
// customer is HubSpot contact 123?" has an answer: in one read and at most
// one transaction for the pull (Store.LinkExternals), not a transaction
// per contact. A contact already linked to another customer is a conflict
// for a person: that message's permanent failure, dead-lettered with the
// reason, while the rest of its pull is acked.
func (s *Service) HandleCRMOutcomes(ctx context.Context, ms []*consumer.Message) error {
	res := make(consumer.Results, len(ms))
	links := make([]ExternalLink, 0, len(ms))
	at := make([]int, 0, len(ms))
	outcomes := make([]*crmv1.ContactSynced, 0, len(ms))
	for i, m := range ms {
		msg, err := subjects.Decode(m.Subject, m.Data)
		if err != nil {
			res[i] = errclass.Permanent(err)
			continue
		}
		synced, ok := msg.(*crmv1.ContactSynced)
		if !ok || synced.GetContactId() == "" || synced.GetCanonicalCustomerId() == "" {
			continue
		}
		m.Customer = synced.GetCanonicalCustomerId()
		links = append(links, ExternalLink{
			CanonicalID:   synced.GetCanonicalCustomerId(),
			ID:            Identifier{LinkCRMContact, synced.GetProvider() + ":" + synced.GetContactId()},
			SourceEventID: synced.GetEventId(),
		})
		at, outcomes = append(at, i), append(outcomes, synced)
	}
	if len(links) > 0 {
		out, err := s.store.LinkExternals(ctx, links)
		if err != nil {
			return err // the pull's: nothing of it was committed
		}
		for j, o := range out {
			res[at[j]] = linkResult(outcomes[j], links[j].ID, o)
		}
	}
	for _, err := range res {
		if err != nil {
			return res
		}
	}
	return nil
}

// linkResult is one outcome's result: nil once linked.
func linkResult(synced *crmv1.ContactSynced, id Identifier, o LinkOutcome) error {
	switch {
	case errors.Is(o.Err, pgx.ErrNoRows):
		return errclass.Permanent(fmt.Errorf("crm outcome names unknown customer %s", synced.GetCanonicalCustomerId()))
	case o.Err != nil:
		return o.Err
	case !o.Linked:
		// Two customers, one CRM contact: a person has to decide which is
		// right, so this is a failure in the console (and an alert), not a
		// log line. Retrying cannot change the answer.
		return errclass.Permanent(fmt.Errorf("CRM contact %s is linked to customer %s, but the CRM returned it for customer %s (%s): "+
			"the CRM holds one contact for two customers — contacts merged in the CRM, or an email moved between customers. "+
			"Compare both customers in the console and correct the CRM; then discard this failure (the link stays with %s)",
			id.Value, o.Owner, synced.GetCanonicalCustomerId(), synced.GetSourceEventId(), o.Owner))
	}
	return nil
}
