package ops

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/services/projector/client"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// OpenAPI is the status API's OpenAPI 3.1 document, served at
// /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Rebuilder runs a rebuild for POST /v1/rebuild.
type Rebuilder func(ctx context.Context) (view.RebuildReport, error)

// Statuser reads the pipeline overview for GET /v1/status.
type Statuser func(ctx context.Context) Overview

// Digester counts the last 24 hours for GET /v1/digest.
type Digester func(ctx context.Context) Digest

// API is the status API.
type API struct {
	store   *view.Store
	tokens  opsauth.Tokens
	rebuild Rebuilder
	status  Statuser
	digest  Digester
	dead    DeadLetterActions
	linker  Linker
	limiter AuthLimiter
	log     *slog.Logger
}

// AuthLimiter throttles failed authentication: a client or a token that
// failed too often is refused, with how long to wait, before its token is
// even looked up. The console implements it, so the status API and the
// login form share one count.
type AuthLimiter interface {
	// AllowAuth reports whether r may try to authenticate with token (""
	// when none) now and, when not, how long until it may.
	AllowAuth(r *http.Request, token string) (time.Duration, bool)
	// FailedAuth records that r failed to authenticate with token.
	FailedAuth(r *http.Request, token string)
}

// peerLimiter is the API's own AuthLimiter until WithAuthLimiter replaces
// it: per peer address (no proxy is trusted) and per token.
type peerLimiter struct{ t *opsauth.Throttle }

func (l peerLimiter) AllowAuth(r *http.Request, token string) (time.Duration, bool) {
	return l.t.Check(peerAddr(r), token)
}

func (l peerLimiter) FailedAuth(r *http.Request, token string) { l.t.Fail(peerAddr(r), token) }

func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// WithAuthLimiter makes l count the API's failed authentications (the
// console, so that behind OPS_TRUSTED_PROXIES the client is the one the
// proxy names, and a client refused at the login form is refused here).
func (a *API) WithAuthLimiter(l AuthLimiter) *API { a.limiter = l; return a }

// DeadLetterActions replays and discards dead letters for a principal,
// audited (the console implements it).
type DeadLetterActions interface {
	Replay(ctx context.Context, actor string, seq uint64) (string, error)
	Discard(ctx context.Context, actor string, seq uint64, note string) (string, error)
}

// WithDeadLetters enables POST /v1/dead-letters/{seq}/replay and /discard.
func (a *API) WithDeadLetters(d DeadLetterActions) *API { a.dead = d; return a }

// NewAPI returns the status API over store. With no tokens every request
// but the OpenAPI document is refused (Run refuses to start that way in
// production).
func NewAPI(store *view.Store, tokens opsauth.Tokens, rebuild Rebuilder, status Statuser, digest Digester, log *slog.Logger) *API {
	return &API{store: store, tokens: tokens, rebuild: rebuild, status: status, digest: digest, log: log,
		limiter: peerLimiter{opsauth.NewThrottle(authLimit, authWindow, nil)}}
}

// openAPI serves the API's OpenAPI document.
func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

// notFound answers a path no route matches.
func (a *API) notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "no such endpoint; see /v1/openapi.json")
}

type principalKey struct{}

// PrincipalFrom returns who made the request.
func PrincipalFrom(ctx context.Context) (opsauth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(opsauth.Principal)
	return p, ok
}

func (a *API) auth(scope string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if a.tokens.Len() == 0 {
			writeError(w, http.StatusServiceUnavailable, "not_configured", "the status API has no tokens: set SWITCHYARD_OPS_TOKENS")
			return
		}
		tok, ok := opsauth.Bearer(r.Header.Get("Authorization"))
		if wait, allowed := a.limiter.AllowAuth(r, tok); !allowed {
			secs := retryAfter(w, wait)
			writeError(w, http.StatusTooManyRequests, "too_many_requests",
				"too many failed authentications from this client or with this token; retry in "+strconv.Itoa(secs)+" s")
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <ops token>")
			return
		}
		p, ok := a.tokens.Lookup(tok)
		if !ok {
			a.limiter.FailedAuth(r, tok)
			a.log.WarnContext(r.Context(), "status API token refused", "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "unknown token")
			return
		}
		if !p.Can(scope) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard", error="insufficient_scope", scope="`+scope+`"`)
			writeError(w, http.StatusForbidden, "forbidden", "this token lacks the "+scope+" scope")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (a *API) getCustomer(w http.ResponseWriter, r *http.Request) {
	doc, err := a.store.Customer(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, doc)
}

// query parses the query string, refusing one that does not decode (which
// url.Query would silently drop).
func query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "query string does not decode: "+err.Error())
		return nil, false
	}
	return q, true
}

func (a *API) findCustomers(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r)
	if !ok {
		return
	}
	email, stripeID, eventID := strings.TrimSpace(q.Get("email")), strings.TrimSpace(q.Get("stripe_customer_id")), strings.TrimSpace(q.Get("stripe_event_id"))
	var docs []json.RawMessage
	var err error
	given := 0
	for _, v := range []string{email, stripeID, eventID} {
		if v != "" {
			given++
		}
	}
	switch {
	case given > 1:
		writeError(w, http.StatusBadRequest, "invalid", "give one of email, stripe_customer_id, stripe_event_id")
		return
	case eventID != "":
		if !strings.HasPrefix(eventID, "evt_") {
			writeError(w, http.StatusBadRequest, "invalid", "stripe_event_id must start with evt_")
			return
		}
		var id string
		id, err = a.store.CustomerOfStripeEvent(r.Context(), eventID)
		if err == nil {
			var doc json.RawMessage
			doc, err = a.store.Customer(r.Context(), id)
			docs = append(docs, doc)
		}
		if errors.Is(err, view.ErrNotFound) {
			docs, err = nil, nil
		}
	case email != "":
		if !strings.Contains(email, "@") {
			writeError(w, http.StatusBadRequest, "invalid", "email is not an email address")
			return
		}
		docs, err = a.store.FindByEmail(r.Context(), email)
	case stripeID != "":
		if !strings.HasPrefix(stripeID, "cus_") {
			writeError(w, http.StatusBadRequest, "invalid", "stripe_customer_id must start with cus_")
			return
		}
		docs, err = a.store.FindByStripeID(r.Context(), stripeID)
	default:
		writeError(w, http.StatusBadRequest, "invalid", "give email, stripe_customer_id or stripe_event_id")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if docs == nil {
		docs = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": docs})
}

const (
	defaultTimelineLimit = 100
	maxTimelineLimit     = 1000
)

func (a *API) timeline(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r)
	if !ok {
		return
	}
	limit := defaultTimelineLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTimelineLimit {
			writeError(w, http.StatusBadRequest, "invalid", "limit must be 1 to "+strconv.Itoa(maxTimelineLimit))
			return
		}
		limit = n
	}
	desc := false
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		desc = true
	default:
		writeError(w, http.StatusBadRequest, "invalid", "order must be asc or desc")
		return
	}
	var after *view.Cursor
	if s := q.Get("after"); s != "" {
		c, err := view.ParseCursor(s)
		if err != nil || c.Desc != desc {
			writeError(w, http.StatusBadRequest, "invalid", "after is not a cursor from a previous page in this order")
			return
		}
		after = &c
	}
	page, err := a.store.Timeline(r.Context(), r.PathValue("id"), after, limit, desc)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) postRebuild(w http.ResponseWriter, r *http.Request) {
	if a.rebuild == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "rebuild is not available here; run switchyard rebuild")
		return
	}
	p, _ := PrincipalFrom(r.Context())
	a.log.InfoContext(r.Context(), "rebuild requested", "by", p.Name)
	// A rebuild may outlast the server's write timeout; its answer must not.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	// A client that gives up waiting does not abort the rebuild.
	rep, err := a.rebuild(context.WithoutCancel(r.Context()))
	if errors.Is(err, view.ErrRebuildRunning) || errors.Is(err, view.ErrHistoryIncomplete) {
		writeError(w, http.StatusConflict, "conflict", err.Error())
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (a *API) getStatus(w http.ResponseWriter, r *http.Request) {
	if a.status == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "status is not available here")
		return
	}
	writeJSON(w, http.StatusOK, a.status(r.Context()))
}

func (a *API) getDigest(w http.ResponseWriter, r *http.Request) {
	if a.digest == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "the digest is not available here")
		return
	}
	writeJSON(w, http.StatusOK, a.digest(r.Context()))
}

// ActionResult is the status API's document (client.ActionResult).
type ActionResult = client.ActionResult

func (a *API) deadLetterAction(w http.ResponseWriter, r *http.Request) {
	if a.dead == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "dead-letter actions are not available here")
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no open dead letter with this sequence")
		return
	}
	p, _ := PrincipalFrom(r.Context())
	ctx := context.WithoutCancel(r.Context()) // a client giving up does not stop it half way
	res := ActionResult{Seq: seq, By: p.Name}
	if strings.HasSuffix(r.URL.Path, "/discard") {
		var body struct {
			Note string `json:"note"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil || strings.TrimSpace(body.Note) == "" {
			writeError(w, http.StatusBadRequest, "invalid", `send {"note": "why no replay is needed"}`)
			return
		}
		res.Action = "discard"
		res.Result, err = a.dead.Discard(ctx, p.Name, seq, strings.TrimSpace(body.Note))
	} else {
		res.Action = "replay"
		res.Result, err = a.dead.Replay(ctx, p.Name, seq)
	}
	switch {
	case errors.Is(err, ErrNoOperator):
		writeError(w, http.StatusServiceUnavailable, "no_operator_identity", ErrNoOperator.Error())
	case errors.Is(err, deadletter.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no open dead letter with this sequence (replayed or discarded already?)")
	case err != nil:
		a.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, view.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no customer with this id")
		return
	}
	a.log.ErrorContext(r.Context(), "status API request failed", "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the projector's log")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "encode response")
		return
	}
	writeRaw(w, code, b)
}

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": kind, "message": msg}})
	writeRaw(w, code, b)
}
