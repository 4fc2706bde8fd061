package hubspot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/platform/emailaddr"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/logging"
)

// ContactInput is one contact to upsert, identified by email.
type ContactInput struct {
	// Email must be an address (emailaddr.Key); otherwise the input is not
	// sent and its result is ErrInvalidEmail.
	Email string
	// Properties are HubSpot property values by internal name; "" clears a
	// value. Numbers are sent as decimal strings. Every value goes through
	// PropertyValue before it is sent.
	Properties map[string]string
}

// ContactResult is the outcome of one ContactInput, at the same index.
type ContactResult struct {
	Email string // as given
	// ID is HubSpot's record id; empty when Err is set.
	ID string
	// New reports that the upsert created the contact.
	New bool
	// Err is this input's failure: Permanent for HubSpot's per-input
	// validation errors (a 207), or the whole-request error of its batch.
	Err error
}

type upsertInput struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

type upsertResponse struct {
	Results []struct {
		ID         string             `json:"id"`
		New        bool               `json:"new"`
		Properties map[string]*string `json:"properties"`
	} `json:"results"`
	Errors []struct {
		Category string              `json:"category"`
		Context  map[string][]string `json:"context"`
		Errors   []struct {
			Code    string              `json:"code"`
			Context map[string][]string `json:"context"`
		} `json:"errors"`
	} `json:"errors"`
}

// UpsertContacts creates or updates contacts by email with HubSpot's batch
// upsert (never search-then-create), up to MaxBatchInputs per request.
// Inputs are split into batches in order; a repeated email goes to a later
// batch, since HubSpot rejects duplicate ids in one batch, so the last
// input for an email wins.
//
// It returns one result per input, matched by email (HubSpot does not
// keep input order). Per-input failures are in ContactResult.Err and do
// not make the returned error non-nil. A whole-request failure stops the
// call: it is returned (classified: Auth for 401/403, Permanent for other
// 4xx, Transient with a retry hint for 429, 5xx and network errors) and
// set as Err of that batch's and every later input. Errors name emails
// only masked.
func (c *Client) UpsertContacts(ctx context.Context, inputs []ContactInput) ([]ContactResult, error) {
	results := make([]ContactResult, len(inputs))
	var batches [][]int
	var cur []int
	seen := map[string]bool{}
	for i, in := range inputs {
		results[i].Email = in.Email
		e, ok := emailaddr.Key(in.Email) // the form HubSpot compares emails in
		if e == "" {
			results[i].Err = errclass.Permanent(errors.New("hubspot: upsert contact: empty email"))
			continue
		}
		if !ok {
			// HubSpot would answer INVALID_EMAIL (or worse, store a key no
			// one can mail): not sent.
			results[i].Err = errclass.Permanent(fmt.Errorf("hubspot: upsert contact: %w", ErrInvalidEmail))
			continue
		}
		if len(cur) == MaxBatchInputs || seen[e] {
			batches = append(batches, cur)
			cur, seen = nil, map[string]bool{}
		}
		cur = append(cur, i)
		seen[e] = true
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	for b, batch := range batches {
		if err := c.upsertBatch(ctx, inputs, batch, results); err != nil {
			for _, rest := range batches[b:] {
				for _, i := range rest {
					results[i].Err = err
				}
			}
			return results, fmt.Errorf("upsert contacts: %w", err)
		}
	}
	return results, nil
}

// upsertBatch sends one batch of unique emails and fills in results.
func (c *Client) upsertBatch(ctx context.Context, inputs []ContactInput, batch []int, results []ContactResult) error {
	body := struct {
		Inputs []upsertInput `json:"inputs"`
	}{Inputs: make([]upsertInput, len(batch))}
	byEmail := make(map[string]int, len(batch))
	for k, i := range batch {
		e := emailaddr.Normalize(inputs[i].Email)
		props := make(map[string]string, len(inputs[i].Properties)+1)
		for name, v := range inputs[i].Properties {
			props[name] = PropertyValue(v)
		}
		// Ask for the email back so results can be matched to inputs.
		props["email"] = e
		body.Inputs[k] = upsertInput{IDProperty: "email", ID: e, Properties: props}
		byEmail[e] = i
	}
	var resp upsertResponse
	if _, err := c.do(ctx, http.MethodPost, "/crm/v3/objects/contacts/batch/upsert", body, &resp); err != nil {
		return err
	}
	done := make(map[int]bool, len(batch))
	for _, r := range resp.Results {
		email := r.Properties["email"]
		if email == nil {
			continue
		}
		i, ok := byEmail[emailaddr.Normalize(*email)]
		switch {
		case !ok:
		case !objectID(r.ID):
			// The id becomes identity's key for the contact and text in
			// the console: an answer that is not HubSpot's is not taken
			// (and the message retried).
			results[i].Err = fmt.Errorf("hubspot: upsert contact %s: the answer's contact id is not a HubSpot object id (%d bytes)",
				logging.MaskEmail(emailaddr.Normalize(*email)), len(r.ID))
			done[i] = true
		default:
			results[i].ID, results[i].New = r.ID, r.New
			done[i] = true
		}
	}
	for _, e := range resp.Errors {
		var codes []string
		for _, d := range e.Errors {
			if d.Code != "" {
				codes = append(codes, token(d.Code))
			}
		}
		for _, id := range e.Context["ids"] {
			i, ok := byEmail[emailaddr.Normalize(id)]
			if !ok {
				continue
			}
			msg := fmt.Sprintf("hubspot: upsert contact %s: %s", logging.MaskEmail(emailaddr.Normalize(id)), token(e.Category))
			if len(codes) > 0 {
				msg += " " + strings.Join(codes, " ")
			}
			err := errors.New(msg)
			if slices.Contains(codes, "INVALID_EMAIL") {
				err = fmt.Errorf("%s: %w", msg, ErrInvalidEmail)
			}
			results[i].Err = errclass.Permanent(err)
			done[i] = true
		}
	}
	for _, i := range batch {
		if !done[i] {
			// Neither a result nor an error: unknown, so retried.
			results[i].Err = fmt.Errorf("hubspot: upsert contact %s: no result in HubSpot's answer",
				logging.MaskEmail(emailaddr.Normalize(inputs[i].Email)))
		}
	}
	return nil
}

// objectID reports whether id is a HubSpot object id: 1 to 20 decimal
// digits (a positive 64-bit number).
func objectID(id string) bool {
	if len(id) == 0 || len(id) > 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}
