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
// 123?" has an answer.
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
	linked, err := s.store.LinkExternal(ctx, synced.GetCanonicalCustomerId(), id, synced.GetEventId())
	if errors.Is(err, pgx.ErrNoRows) {
		return errclass.Permanent(fmt.Errorf("crm outcome names unknown customer %s", synced.GetCanonicalCustomerId()))
	}
	if err != nil {
		return err
	}
	if !linked {
		s.log.WarnContext(ctx, "CRM contact already linked to another customer", "contact", id.Value)
	}
	return nil
}
