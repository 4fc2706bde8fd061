//go:build !nodev

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit/fixtures"
	"github.com/switchyard/switchyard/platform/lifecycle"
)

// devStripeAddr is where the Stripe emulator listens: a free loopback
// port, which dev writes to devStripeEmulatorFile and prints. (Its clients
// read the file, so a fixed port would buy nothing but collisions.)
const devStripeAddr = "127.0.0.1:0"

// devStripeEndpointID is the webhook endpoint dev registers in its Stripe
// emulator: the gateway's URL, as the Dashboard would hold it, so that
// `switchyard doctor` against dev finds the endpoint configured.
const devStripeEndpointID = "we_switchyardDevGateway"

// devStripeStarted, when set (by tests), is given the Stripe emulator dev
// starts, to read its request log.
var devStripeStarted func(*stripeapi.Server)

// stripeEmulator starts the Stripe API emulator on a free loopback port,
// unless the environment holds real Stripe credentials (STRIPE_API_KEY or
// STRIPE_API_KEY_FILE), and points every part that reads Stripe
// (identity's refetches) at it through STRIPE_API_BASE and STRIPE_API_KEY.
// Its objects and events are kept in stateDir across runs; it is seeded
// with every fixture event and the objects they name, and holds a webhook
// endpoint for the gateway. Its URL and key go to devStripeEmulatorFile.
func (h *devHub) stripeEmulator(over map[string]string, stateDir string) error {
	getenv := h.getenv
	infoPath := filepath.Join(h.f.dataDir, devStripeEmulatorFile)
	// set: identity reads that Stripe account, no emulator starts (unset: the emulator of stripe-api.json)
	if getenv("STRIPE_API_KEY") != "" || getenv("STRIPE_API_KEY_FILE") != "" {
		// A file naming an emulator that no longer runs would send the CLI
		// there.
		if err := os.Remove(infoPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stripe emulator: remove %s: %w", infoPath, err)
		}
		base := orDefault(getenv("STRIPE_API_BASE"), stripe.APIURL) // the Stripe API's base URL, with STRIPE_API_KEY
		h.emulatorLines = append(h.emulatorLines, "  Stripe API:      "+base+" (STRIPE_API_KEY)")
		return nil
	}
	key, err := devStripeKey(infoPath)
	if err != nil {
		return err
	}
	readLimit := stripeapi.DefaultTestReadLimit
	if h.f.unlimited {
		readLimit = 0
	}
	st := stripeapi.New(stripeapi.Options{APIKeys: []string{key}, TestReadLimit: readLimit})
	kept, err := statefile.Open(filepath.Join(stateDir, "stripe.json"), st, 0)
	if err != nil {
		return fmt.Errorf("stripe emulator: %w", err)
	}
	if err := fixtures.SeedStripe(st); err != nil {
		return fmt.Errorf("stripe emulator: %w", err)
	}
	webhookURL := "http://" + dialAddr(h.f.gatewayAddr) + "/webhooks/stripe"
	if err := st.PutWebhookEndpoint(devStripeEndpoint(webhookURL, st)); err != nil {
		return fmt.Errorf("stripe emulator: webhook endpoint: %w", err)
	}
	ln, err := net.Listen("tcp", devStripeAddr)
	if err != nil {
		return fmt.Errorf("stripe emulator on %s: %w", devStripeAddr, err)
	}
	h.stops = append(h.stops, func() { _ = ln.Close() }) // served: already closed
	base := "http://" + ln.Addr().String()
	info, err := json.Marshal(devStripeEmulator{URL: base, APIKey: key})
	if err != nil {
		return err
	}
	if err := statefile.WriteFile(infoPath, append(info, '\n'), 0o600); err != nil {
		return fmt.Errorf("stripe emulator: save %s: %w", infoPath, err)
	}
	durable := newDurableEmulator(st, kept)
	h.emulators = append(h.emulators, emulator{name: "stripe", srv: lifecycle.Harden(&http.Server{Addr: ln.Addr().String(), Handler: durable}),
		kept: kept, durable: durable, ln: ln})
	over["STRIPE_API_KEY"], over["STRIPE_API_KEY_FILE"], over["STRIPE_API_BASE"] = key, "", base
	h.emulatorLines = append(h.emulatorLines, "  Stripe API:      emulator at "+base+" (URL and key in "+infoPath+"; set STRIPE_API_KEY for the real one)")
	if devStripeStarted != nil {
		devStripeStarted(st)
	}
	return nil
}

// devStripeKey returns the emulator's key saved in path by an earlier run,
// or a new random test-mode key.
func devStripeKey(path string) (string, error) {
	saved, err := readDevStripeEmulator(filepath.Dir(path))
	switch {
	case err == nil:
		return saved.APIKey, nil
	case errors.Is(err, fs.ErrNotExist):
		return "sk_test_" + randomHex(24), nil
	}
	return "", fmt.Errorf("stripe emulator: %w (delete it for a new key)", err)
}

// devStripeEndpoint is the gateway's webhook endpoint as Stripe would list
// it: enabled, sending every event type the hub handles, rendering the API
// version stripe-go pins. It keeps the created time of the one st holds.
func devStripeEndpoint(url string, st *stripeapi.Server) map[string]any {
	created := time.Now().Unix()
	if raw, ok := st.Object("webhook_endpoint", devStripeEndpointID); ok {
		var old struct {
			Created int64 `json:"created"`
		}
		if json.Unmarshal(raw, &old) == nil && old.Created > 0 {
			created = old.Created
		}
	}
	return map[string]any{
		"id": devStripeEndpointID, "object": "webhook_endpoint", "api_version": stripe.APIVersion,
		"application": nil, "created": created, "description": "switchyard dev: the gateway",
		"enabled_events": slices.Clone(hubEventTypes), "livemode": false, "metadata": map[string]string{},
		"status": "enabled", "url": url,
	}
}
