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

// HandleCRMOutcome links the CRM contact id of a crm.contact.synced outcome
// back to its canonical customer, so "which customer is HubSpot contact
// 123?" has an answer. A contact already linked to another customer is a
// conflict for a person: a permanent failure, dead-lettered with the reason.
func (s *Service) HandleCRMOutcome(ctx context.Context, m *consumer.Message) error {
	msg, err := subjects.Decode(m.Subject, m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	synced, ok := msg.(*crmv1.ContactSynced)
	if !ok || synced.GetContactId() == "" || synced.GetCanonicalCustomerId() == "" {
		return nil
	}
	id := Identifier{LinkCRMContact, synced.GetProvider() + ":" + synced.GetContactId()}
	linked, owner, err := s.store.LinkExternal(ctx, synced.GetCanonicalCustomerId(), id, synced.GetEventId())
	if errors.Is(err, pgx.ErrNoRows) {
		return errclass.Permanent(fmt.Errorf("crm outcome names unknown customer %s", synced.GetCanonicalCustomerId()))
	}
	if err != nil {
		return err
	}
	if !linked {
		// Two customers, one CRM contact: a person has to decide which is
		// right, so this is a failure in the console (and an alert), not a
		// log line. Retrying cannot change the answer.
		return errclass.Permanent(fmt.Errorf("CRM contact %s is linked to customer %s, but the CRM returned it for customer %s (%s): "+
			"the CRM holds one contact for two customers — contacts merged in the CRM, or an email moved between customers. "+
			"Compare both customers in the console and correct the CRM; then discard this failure (the link stays with %s)",
			id.Value, owner, synced.GetCanonicalCustomerId(), synced.GetSourceEventId(), owner))
	}
	return nil
}
