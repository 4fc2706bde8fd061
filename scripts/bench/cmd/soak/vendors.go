package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

// Credentials of the soak's emulators (local only).
const (
	hubspotToken  = "pat-soak-switchyard-emulator"
	zendeskEmail  = "soak-agent@switchyard.local"
	zendeskToken  = "soak-zendesk-emulator-token"
	supportGroups = "Billing=1,Customer Success=2"
	vendorSeed    = 1
)

// vendors are the HubSpot, Zendesk and Slack emulators the hub talks to,
// served from this process on loopback ports, as `switchyard dev
// --vendor-errors` serves them: no rate limits, a share of requests failed
// with each vendor's retryable errors.
type vendors struct {
	hubspot *hubspotemu.Server
	zendesk *zendeskemu.Server
	slack   *slackemu.Server
	servers []*http.Server
	env     map[string]string // what the hub reads to use them
}

func startVendors(share float64) (*vendors, error) {
	v := &vendors{hubspot: hubspotemu.New(hubspotemu.Options{TenSecondLimit: -1, SearchPerSecondLimit: -1, DailyLimit: -1, UniqueIDs: true})}
	v.hubspot.FlakyRate(share, vendorSeed)
	var err error
	v.zendesk, err = zendeskemu.New(zendeskemu.Options{Email: zendeskEmail, APIToken: zendeskToken, RateLimit: -1, UniqueIDs: true,
		Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}, {ID: 2, Name: "Customer Success"}}})
	if err != nil {
		return nil, err
	}
	v.zendesk.FlakyRate(share, vendorSeed)
	if v.slack, err = slackemu.New(slackemu.Options{RateLimit: -1}); err != nil {
		return nil, err
	}
	urls := make([]string, 3)
	for i, h := range []http.Handler{v.hubspot, v.zendesk, flakySlack(v.slack, share)} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(err, v.close())
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		v.servers = append(v.servers, srv)
		go func() { _ = srv.Serve(ln) }()
		urls[i] = "http://" + ln.Addr().String()
	}
	v.env = map[string]string{
		"HUBSPOT_TOKEN":     hubspotToken,
		"HUBSPOT_BASE_URL":  urls[0],
		"ZENDESK_BASE_URL":  urls[1],
		"ZENDESK_EMAIL":     zendeskEmail,
		"ZENDESK_API_TOKEN": zendeskToken,
		"SUPPORT_GROUPS":    supportGroups,
		"SLACK_WEBHOOK_URL": urls[2] + v.slack.Path(),
	}
	return v, nil
}

func (v *vendors) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, s := range v.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// flakySlack fails the share p of the posts to sl with 429 (Retry-After)
// or 500, queued with sl.FailNext so the answer is the emulator's own (as
// `switchyard dev --vendor-errors` does).
func flakySlack(sl *slackemu.Server, p float64) http.Handler {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(vendorSeed, 0x51ac))
	statuses := []int{http.StatusTooManyRequests, http.StatusInternalServerError}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := rng.Float64() < p
		status := statuses[rng.IntN(len(statuses))]
		mu.Unlock()
		if fail {
			sl.FailNext(1, status)
		}
		sl.ServeHTTP(w, r)
	})
}
