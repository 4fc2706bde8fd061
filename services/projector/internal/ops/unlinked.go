package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/platform/opscmd"
	"github.com/switchyard/switchyard/services/projector/client"
)

// Unlinked payers. A charge or dispute that names no Stripe customer (a
// guest payment) has a customer record of its own, linked to no one:
// whatever email its payer typed is no one's identity. The console and the
// status API list these records with candidate customers (a verified email
// equal to one the payer typed), and one audited operator action links a
// record to a customer: identity merges it (opscmd.Link), and the merge
// comes back through billing.customer.upserted like any other.

// ErrLinkRefused wraps identity's refusal of a link (opscmd.Refused).
var ErrLinkRefused = errors.New("link refused")

// Link links the unlinked payer record guest to customer for actor, as
// the operator's NATS identity, audited: the record is written before
// identity is asked and completed with its answer.
func (c *Console) Link(ctx context.Context, actor, guest, customer, note string) (opscmd.LinkReply, error) {
	if c.opsNC == nil {
		return opscmd.LinkReply{}, ErrNoOperator
	}
	target := "customer " + guest + " (link to " + customer + ")"
	var reply opscmd.LinkReply
	id, err := c.auditStart(ctx, actor, "link", target, note)
	if err != nil {
		return reply, fmt.Errorf("audit record: %w (nothing was done)", err)
	}
	reply, err = opscmd.SendLink(ctx, c.opsNC, c.signKey, opscmd.Link{GuestID: guest, CustomerID: customer, Actor: actor, Note: note})
	result := "linked to " + reply.CustomerID
	if reply.Already {
		result += " (already linked)"
	}
	var refused *opscmd.Refused
	switch {
	case errors.As(err, &refused):
		result = "refused: " + refused.Message
		err = fmt.Errorf("%w: %w", ErrLinkRefused, refused)
	case err != nil:
		result = "failed: " + err.Error()
	}
	c.auditFinish(ctx, id, "link", actor, target, result)
	return reply, err
}

// validRecordID bounds an id typed into a form or a URL.
func validRecordID(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// Console pages.

func (c *Console) unlinkedPage(req *request) {
	payers, err := c.store.Unlinked(req.r.Context(), 200)
	if err != nil {
		c.internal(req, err)
		return
	}
	c.render(req.w, http.StatusOK, "unlinked", c.data(req, "Unlinked payments", map[string]any{"Payers": payers, "Linked": req.r.URL.Query().Get("linked")}))
}

func (c *Console) linkAction(req *request) {
	guest := req.r.PathValue("id")
	customer := strings.TrimSpace(req.r.PostForm.Get("customer_id"))
	if !validRecordID(guest) || !validRecordID(customer) {
		c.fail(req, http.StatusBadRequest, "Name the customer to link this payment to (its canonical id).")
		return
	}
	reply, err := c.Link(req.r.Context(), req.who.Name, guest, customer, strings.TrimSpace(req.r.PostForm.Get("note")))
	switch {
	case errors.Is(err, ErrNoOperator):
		c.fail(req, http.StatusServiceUnavailable, "Linking needs the operator's NATS identity (OPS_NATS_PASSWORD_FILE).")
	case errors.Is(err, ErrLinkRefused):
		c.fail(req, http.StatusConflict, "Not linked: "+strings.TrimPrefix(err.Error(), ErrLinkRefused.Error()+": ")+".")
	case errors.Is(err, opscmd.ErrNoResponder):
		c.fail(req, http.StatusServiceUnavailable, "Not linked: "+err.Error()+".")
	case err != nil:
		c.internal(req, err)
	default:
		http.Redirect(req.w, req.r, "/console/unlinked?linked="+reply.CustomerID, http.StatusSeeOther)
	}
}

// Status API.

func (a *API) getUnlinked(w http.ResponseWriter, r *http.Request) {
	payers, err := a.store.Unlinked(r.Context(), 200)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"unlinked": payers})
}

// LinkResult is the status API's document (client.LinkResult).
type LinkResult = client.LinkResult

// Linker links an unlinked payer's record to a customer, audited (the
// console implements it).
type Linker interface {
	Link(ctx context.Context, actor, guest, customer, note string) (opscmd.LinkReply, error)
}

// WithLinker enables POST /v1/customers/{id}/link.
func (a *API) WithLinker(l Linker) *API { a.linker = l; return a }

func (a *API) postLink(w http.ResponseWriter, r *http.Request) {
	if a.linker == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "linking is not available here")
		return
	}
	var body struct {
		CustomerID string `json:"customer_id"`
		Note       string `json:"note"`
	}
	guest := r.PathValue("id")
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil || !validRecordID(body.CustomerID) || !validRecordID(guest) {
		writeError(w, http.StatusBadRequest, "invalid", `send {"customer_id": "<the customer's canonical id>", "note": "how you know"}`)
		return
	}
	p, _ := PrincipalFrom(r.Context())
	ctx := context.WithoutCancel(r.Context()) // a client giving up does not stop it half way
	reply, err := a.linker.Link(ctx, p.Name, guest, body.CustomerID, strings.TrimSpace(body.Note))
	var refused *opscmd.Refused
	switch {
	case errors.Is(err, ErrNoOperator):
		writeError(w, http.StatusServiceUnavailable, "no_operator_identity", ErrNoOperator.Error())
	case errors.As(err, &refused) && refused.Code == opscmd.CodeNotFound:
		writeError(w, http.StatusNotFound, "not_found", refused.Message)
	case errors.As(err, &refused):
		writeError(w, http.StatusConflict, refused.Code, refused.Message)
	case errors.Is(err, opscmd.ErrNoResponder):
		writeError(w, http.StatusServiceUnavailable, "identity_unavailable", err.Error())
	case err != nil:
		a.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, LinkResult{GuestID: guest, CustomerID: reply.CustomerID, Already: reply.Already, By: p.Name})
	}
}
