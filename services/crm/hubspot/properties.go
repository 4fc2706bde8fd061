package hubspot

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/switchyard/switchyard/platform/errclass"
)

// Property is a custom contact property definition. Enumerations (which
// need options) are not supported.
type Property struct {
	Name  string
	Label string // default Name
	// Type is string (default), number, bool, date or datetime.
	Type string
	// FieldType defaults from Type: text, number, booleancheckbox, date.
	FieldType string
	// GroupName defaults to "contactinformation".
	GroupName   string
	Description string
	// HasUniqueValue makes the property usable as an upsert idProperty.
	HasUniqueValue bool
}

// DefaultProperties are the custom contact properties the CRM service writes.
func DefaultProperties() []Property {
	return []Property{
		{Name: "switchyard_canonical_id", Label: "Switchyard canonical id", HasUniqueValue: true},
		{Name: "stripe_customer_id", Label: "Stripe customer id"},
		{Name: "switchyard_plan", Label: "Plan"},
		{Name: "switchyard_subscription_status", Label: "Subscription status"},
		{Name: "switchyard_mrr", Label: "MRR", Type: "number"},
		{Name: "switchyard_last_payment_status", Label: "Last payment status"},
	}
}

type propertyJSON struct {
	Name           string `json:"name"`
	Label          string `json:"label"`
	Type           string `json:"type"`
	FieldType      string `json:"fieldType"`
	GroupName      string `json:"groupName"`
	Description    string `json:"description,omitempty"`
	HasUniqueValue bool   `json:"hasUniqueValue"`
}

func (p Property) toJSON() propertyJSON {
	j := propertyJSON(p)
	if j.Label == "" {
		j.Label = j.Name
	}
	if j.Type == "" {
		j.Type = "string"
	}
	if j.FieldType == "" {
		switch j.Type {
		case "number":
			j.FieldType = "number"
		case "bool":
			j.FieldType = "booleancheckbox"
		case "date", "datetime":
			j.FieldType = "date"
		default:
			j.FieldType = "text"
		}
	}
	if j.GroupName == "" {
		j.GroupName = "contactinformation"
	}
	return j
}

// EnsureProperties creates each property that does not exist yet. It is
// idempotent: an existing property (found by GET, or a 409 from a
// concurrent creator) is left as it is, even if its definition differs.
// Errors are classified as in UpsertContacts.
func (c *Client) EnsureProperties(ctx context.Context, props []Property) error {
	for _, p := range props {
		if p.Name == "" {
			return errclass.Permanent(fmt.Errorf("hubspot: ensure property: empty name"))
		}
		status, err := c.do(ctx, http.MethodGet, "/crm/v3/properties/contacts/"+url.PathEscape(p.Name), nil, nil)
		switch {
		case err == nil:
			continue
		case status != http.StatusNotFound:
			return fmt.Errorf("ensure property %s: %w", p.Name, err)
		}
		status, err = c.do(ctx, http.MethodPost, "/crm/v3/properties/contacts", p.toJSON(), nil)
		if err != nil && status != http.StatusConflict {
			return fmt.Errorf("ensure property %s: %w", p.Name, err)
		}
	}
	return nil
}
