// Package opscmd is the operator's commands to services over core NATS
// request/reply: today one, linking an unlinked payer's record (a guest
// payment's customer) to a customer, which identity carries out.
//
// A command goes out on its subject (wire.OpsLinkCustomer), which only the
// operator's NATS identity may publish, signed with the operator's key
// (opsauth.SignCommand) so a service given the operator's public keys can
// verify who sent it. The reply comes back on a subject under
// wire.OpsLinkReplyPrefix, which only the service may publish to and only
// the operator may read. Commands are idempotent: repeating one (a lost
// reply, a second click) answers as the first did.
package opscmd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/proto/wire"
)

// Link asks identity to merge the record GuestID (a canonical customer
// with no Stripe customer: a guest payment, linked to no one) into the
// customer CustomerID.
type Link struct {
	RequestID  string `json:"request_id"`
	GuestID    string `json:"guest_id"`
	CustomerID string `json:"customer_id"`
	Actor      string `json:"actor"` // who asked, for identity's log
	Note       string `json:"note,omitempty"`
}

// Reply codes of a refused command.
const (
	CodeInvalid     = "invalid"      // malformed command
	CodeUnverified  = "unverified"   // no operator key signed it
	CodeNotFound    = "not_found"    // no such guest record or customer
	CodeNotUnlinked = "not_unlinked" // the record has a Stripe customer: not a guest's
	CodeMerged      = "merged"       // the record was merged into another customer already
	CodeInternal    = "internal"     // the service failed; see its log
)

// LinkReply is identity's answer.
type LinkReply struct {
	// CustomerID is the customer the record now belongs to (the target's
	// surviving record), Already says the link had been made before.
	CustomerID string `json:"customer_id,omitempty"`
	Already    bool   `json:"already,omitempty"`
	Code       string `json:"code,omitempty"` // set when refused
	Error      string `json:"error,omitempty"`
}

// Refused is a command the service refused, with its code.
type Refused struct{ Code, Message string }

func (e *Refused) Error() string { return e.Message }

// ErrNoResponder: no identity replica answered in time.
var ErrNoResponder = errors.New("identity did not answer the link command (is it running?)")

// SendLink sends l on nc (logged in as the operator), signed with key when
// set, and waits for the reply. A refusal is a *Refused.
func SendLink(ctx context.Context, nc *nats.Conn, key ed25519.PrivateKey, l Link) (LinkReply, error) {
	if l.RequestID == "" {
		l.RequestID = newID()
	}
	data, err := json.Marshal(l)
	if err != nil {
		return LinkReply{}, err
	}
	reply := wire.OpsLinkReplyPrefix + newID()
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		return LinkReply{}, fmt.Errorf("link command: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg := &nats.Msg{Subject: wire.OpsLinkCustomer, Reply: reply, Data: data, Header: nats.Header{}}
	if key != nil {
		msg.Header.Set(wire.HeaderOperatorSig, opsauth.SignCommand(key, msg.Subject, data))
	}
	if err := nc.PublishMsg(msg); err != nil {
		return LinkReply{}, fmt.Errorf("link command: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return LinkReply{}, ErrNoResponder
		}
		return LinkReply{}, fmt.Errorf("link command: %w", err)
	}
	if m.Header.Get("Status") == "503" { // the server's answer: no subscriber
		return LinkReply{}, ErrNoResponder
	}
	var r LinkReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return LinkReply{}, fmt.Errorf("link command: unreadable reply: %w", err)
	}
	if r.Code != "" {
		return r, &Refused{Code: r.Code, Message: r.Error}
	}
	return r, nil
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
