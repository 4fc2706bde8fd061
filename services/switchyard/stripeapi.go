package main

// The Stripe API as trigger and resend reach it: the dev hub's emulator
// (from the file `switchyard dev` writes), or the one STRIPE_API_BASE and
// STRIPE_API_KEY name (identity's and reconcile's variables), else Stripe.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/config"
)

// stripeAPI is a Stripe API to talk to.
type stripeAPI struct {
	URL    string
	APIKey string
	// from says where it was found, for messages.
	from string
}

// isStripe reports whether a is Stripe itself (which has no emulator
// endpoints).
func (a stripeAPI) isStripe() bool { return strings.TrimRight(a.URL, "/") == stripe.APIURL }

// resolveStripeAPI finds the Stripe API: base (--stripe-api-base, else
// STRIPE_API_BASE) or STRIPE_API_KEY set means the environment's (the key
// from STRIPE_API_KEY[_FILE], the base defaulting to Stripe's); else the
// dev hub's emulator from dataDir's stripe-api.json; else none (ok false).
func resolveStripeAPI(getenv func(string) string, base, dataDir string) (api stripeAPI, ok bool, err error) {
	r := config.NewReader(getenv)
	// STRIPE_API_BASE: the Stripe API trigger registers events with and resend fetches them from (an emulator's URL; default Stripe's).
	envBase := r.String("STRIPE_API_BASE", "")
	// STRIPE_API_KEY: the key trigger and resend present to the Stripe API (resend: Events read).
	key := r.Secret("STRIPE_API_KEY")
	if err := r.Err(); err != nil {
		return api, false, withCode(codeInvalid, err)
	}
	if base == "" {
		base = envBase
	}
	if base != "" || key.IsSet() {
		api = stripeAPI{URL: orDefault(base, stripe.APIURL), APIKey: key.Reveal(), from: "STRIPE_API_BASE/STRIPE_API_KEY"}
		if !key.IsSet() {
			return api, false, withCode(codeInvalid, fmt.Errorf("the Stripe API at %s: set STRIPE_API_KEY (or STRIPE_API_KEY_FILE)", api.URL))
		}
		return api, true, api.check()
	}
	emu, err := readDevStripeEmulator(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return api, false, nil
	}
	if err != nil {
		return api, false, withCode(codeInvalid, err)
	}
	api = stripeAPI{URL: emu.URL, APIKey: emu.APIKey, from: filepath.Join(dataDir, devStripeEmulatorFile)}
	return api, true, api.check()
}

// check refuses a base that is not an http(s) URL.
func (a stripeAPI) check() error {
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return withCode(codeInvalid, fmt.Errorf("the Stripe API base %q (from %s) is not an http(s) URL", a.URL, a.from))
	}
	return nil
}

// do sends one request to the API and returns the body of a 2xx answer;
// any other answer is an error carrying Stripe's message and a code from
// its status.
func (a stripeAPI) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.URL, "/")+path, rd)
	if err != nil {
		return nil, withCode(codeInvalid, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.APIKey)
	req.Header.Set("User-Agent", "switchyard-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, withCode(codeUnavailable, fmt.Errorf("the Stripe API at %s (from %s): %w", a.URL, a.from, err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, withCode(codeUnavailable, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return answer, nil
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := strings.TrimSpace(string(answer))
	if json.Unmarshal(answer, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	code := codeInvalid
	switch {
	case resp.StatusCode == http.StatusNotFound:
		code = codeNotFound
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		code = codeUnauthorized
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		code = codeUnavailable
	}
	return nil, withCode(code, fmt.Errorf("%s %s at %s: %s: %s", method, path, a.URL, resp.Status, msg))
}

// registerEvent tells the dev hub's emulator about an event and the
// objects it carries, so the hub's refetches find them: POST
// {url}/_emulator/events with the event as body (idempotent per event id).
func (a stripeAPI) registerEvent(ctx context.Context, event []byte) error {
	_, err := a.do(ctx, http.MethodPost, "/_emulator/events", event)
	return err
}

// registerObject is the emulator's POST /_emulator/objects: the object is
// stored as Stripe would hold it.
func (a stripeAPI) registerObject(ctx context.Context, object []byte) error {
	_, err := a.do(ctx, http.MethodPost, "/_emulator/objects", object)
	return err
}

// fetchEvent is GET /v1/events/{id}: the event as Stripe keeps it.
func (a stripeAPI) fetchEvent(ctx context.Context, id string) ([]byte, error) {
	return a.do(ctx, http.MethodGet, "/v1/events/"+url.PathEscape(id), nil)
}
