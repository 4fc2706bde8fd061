package support

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"text/template"

	"github.com/switchyard/switchyard/proto/subjects"
)

//go:embed rules.default.json
var defaultRules []byte

// Rule maps one kind of billing event to a ticket.
type Rule struct {
	Name     string   `json:"name"`               // unique; part of the ticket's external_id
	On       string   `json:"on"`                 // billing subject
	When     When     `json:"when"`               // extra conditions on validated fields
	Kind     string   `json:"kind"`               // ticket kind tag, e.g. payment_failed
	Priority string   `json:"priority"`           // urgent | high | normal | low
	Type     string   `json:"type"`               // problem | incident | question | task
	Group    string   `json:"group"`              // Zendesk group name, resolved through SUPPORT_GROUPS
	Assignee int64    `json:"assignee_id"`        // optional Zendesk agent id (0: the group's queue)
	Tags     []string `json:"tags"`               //
	Critical bool     `json:"critical,omitempty"` // a failure to open the ticket alerts ops at once
	Subject  string   `json:"subject"`            // text/template over TicketData
	Body     string   `json:"body"`               // text/template over TicketData

	subject, body *template.Template
}

// When holds the conditions a rule may test: only validated fields of the
// domain event, never free-form metadata.
type When struct {
	Final *bool `json:"final,omitempty"` // billing.payment.failed: Stripe will not retry
}

// Rules is a validated rules file.
type Rules struct {
	Rules []*Rule `json:"rules"`
}

var (
	priorities  = []string{"urgent", "high", "normal", "low"}
	ticketTypes = []string{"problem", "incident", "question", "task"}
	ruleSubject = []string{subjects.BillingPaymentFailed, subjects.BillingSubscriptionCanceled, subjects.BillingDisputeOpened,
		subjects.BillingDisputeClosed, subjects.BillingRefundIssued, subjects.BillingSubscriptionPastDue, subjects.BillingPaymentSucceeded,
		subjects.BillingSubscriptionTrialEnding, subjects.BillingSubscriptionDowngraded, subjects.BillingSubscriptionUpgraded}
)

// ParseRules reads and validates a rules file; every problem is reported.
func ParseRules(data []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rs Rules
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	if len(rs.Rules) == 0 {
		errs = append(errs, errors.New("rules: no rules"))
	}
	for i, r := range rs.Rules {
		where := fmt.Sprintf("rules[%d] %q", i, r.Name)
		switch {
		case r.Name == "" || !subjects.ValidToken(r.Name):
			errs = append(errs, fmt.Errorf("%s: name must be one word of letters, digits, - or _", where))
		case seen[r.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		seen[r.Name] = true
		if !slices.Contains(ruleSubject, r.On) {
			errs = append(errs, fmt.Errorf("%s: on %q is not a billing subject rules can use (%v)", where, r.On, ruleSubject))
		}
		if r.When.Final != nil && r.On != subjects.BillingPaymentFailed {
			errs = append(errs, fmt.Errorf("%s: when.final applies only to %s", where, subjects.BillingPaymentFailed))
		}
		if !slices.Contains(priorities, r.Priority) {
			errs = append(errs, fmt.Errorf("%s: priority %q is not one of %v", where, r.Priority, priorities))
		}
		if !slices.Contains(ticketTypes, r.Type) {
			errs = append(errs, fmt.Errorf("%s: type %q is not one of %v", where, r.Type, ticketTypes))
		}
		if r.Assignee < 0 {
			errs = append(errs, fmt.Errorf("%s: assignee_id must be a Zendesk user id", where))
		}
		if r.Kind == "" || r.Group == "" {
			errs = append(errs, fmt.Errorf("%s: kind and group are required", where))
		}
		var err error
		if r.subject, err = template.New(r.Name + ".subject").Option("missingkey=error").Parse(r.Subject); err != nil || r.Subject == "" {
			errs = append(errs, fmt.Errorf("%s: subject: %v", where, err))
		}
		if r.body, err = template.New(r.Name + ".body").Option("missingkey=error").Parse(r.Body); err != nil || r.Body == "" {
			errs = append(errs, fmt.Errorf("%s: body: %v", where, err))
		}
		if r.subject != nil && r.body != nil {
			// Render against sample data so a misspelt field fails at start-up, not on a payment failure.
			if _, _, err := r.render(sampleData); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &rs, nil
}

// DefaultRules returns the shipped rules (TestDefaultRules keeps them valid).
func DefaultRules() (*Rules, error) { return ParseRules(defaultRules) }

// Match returns the rules an event triggers.
func (rs *Rules) Match(subject string, final bool) []*Rule {
	var out []*Rule
	for _, r := range rs.Rules {
		if r.On == subject && (r.When.Final == nil || *r.When.Final == final) {
			out = append(out, r)
		}
	}
	return out
}

func (r *Rule) render(d TicketData) (subject, body string, err error) {
	var s, b bytes.Buffer
	if err := r.subject.Execute(&s, d); err != nil {
		return "", "", fmt.Errorf("subject: %w", err)
	}
	if err := r.body.Execute(&b, d); err != nil {
		return "", "", fmt.Errorf("body: %w", err)
	}
	return s.String(), b.String(), nil
}
