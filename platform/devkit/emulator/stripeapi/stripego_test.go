package stripeapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// stripeClient is a stripe-go v76 client.API (not the package globals) whose
// API backend is the emulator at url.
func stripeClient(t *testing.T, url, key string, retries int64) *client.API {
	t.Helper()
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(url),
		HTTPClient:        &http.Client{Timeout: 10 * time.Second},
		MaxNetworkRetries: stripe.Int64(retries),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return client.New(key, &stripe.Backends{API: backend})
}

// countingServer serves srv on httptest and counts the requests per path.
func countingServer(t *testing.T, srv *stripeapi.Server, path string) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			n.Add(1)
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &n
}

func TestStripeGoRetrievesTypedObjects(t *testing.T) {
	t.Parallel()
	if stripe.APIVersion != stripeapi.DefaultAPIVersion {
		t.Fatalf("stripe-go pins %s, the emulator defaults to %s", stripe.APIVersion, stripeapi.DefaultAPIVersion)
	}
	srv, base := newServer(t, stripeapi.Options{})
	for _, name := range testkit.StripeEventNames(t) {
		mustNoErr(t, srv.SeedFromEvent(testkit.StripeEvent(t, name)))
	}
	sc := stripeClient(t, base, testKey, 0)

	cus, err := sc.Customers.Get("cus_OnMHOpJU2HN6Xv", nil)
	mustNoErr(t, err)
	if cus.Email != "jenny.rosen@example.com" || cus.Metadata["foo"] != "bar" || cus.Livemode {
		t.Errorf("customer = email %q metadata %v livemode %t", cus.Email, cus.Metadata, cus.Livemode)
	}
	if cus.LastResponse == nil || !requestIDPattern.MatchString(cus.LastResponse.RequestID) ||
		cus.LastResponse.Header.Get("Stripe-Version") != stripe.APIVersion {
		t.Errorf("last response: %+v", cus.LastResponse)
	}

	sub, err := sc.Subscriptions.Get("sub_1O00X8GgdF1VjufLsFtFRRh8", nil)
	mustNoErr(t, err)
	if sub.Status != stripe.SubscriptionStatusCanceled || sub.Customer == nil || sub.Customer.ID != cus.ID {
		t.Errorf("subscription = status %q customer %+v", sub.Status, sub.Customer)
	}
	if sub.Items == nil || len(sub.Items.Data) == 0 || sub.Items.Data[0].Price == nil {
		t.Errorf("subscription items not decoded: %+v", sub.Items)
	}

	inv, err := sc.Invoices.Get("in_1O00X6GgdF1VjufL97zeI8ME", nil)
	mustNoErr(t, err)
	if inv.Status != stripe.InvoiceStatusPaid || !inv.Paid || inv.Customer.ID != cus.ID || inv.Charge == nil {
		t.Errorf("invoice = status %q paid %t customer %+v charge %+v", inv.Status, inv.Paid, inv.Customer, inv.Charge)
	}

	// A dispute carries only a charge id; the charge is found through it.
	ch, err := sc.Charges.Get("ch_1NzlYeGgdF1VjufLh34inorG", nil)
	mustNoErr(t, err)
	if !ch.Refunded || ch.AmountRefunded != 100 || ch.Customer != nil {
		t.Errorf("charge = refunded %t amount_refunded %d customer %+v", ch.Refunded, ch.AmountRefunded, ch.Customer)
	}

	ev, err := sc.Events.Get("evt_1O5cugGgdF1VjufLgEvxRpek", nil)
	mustNoErr(t, err)
	if ev.Type != "invoice.paid" || ev.Data == nil || ev.Data.Object["id"] != inv.ID {
		t.Errorf("event = type %q data %+v", ev.Type, ev.Data)
	}
}

func TestStripeGoErrors(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	mustNoErr(t, srv.PutCustomer(map[string]any{"id": "cus_1", "email": "a@example.com"}))

	tests := []struct {
		name       string
		key        string
		id         string
		wantStatus int
		wantType   stripe.ErrorType
		wantCode   stripe.ErrorCode
		wantMsg    string
	}{
		{"missing customer", testKey, "cus_missing", 404, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeResourceMissing, "No such customer: 'cus_missing'"},
		{"wrong key", "sk_test_51EmuLatorKeyWRONGbcd0000", "cus_1", 401, stripe.ErrorTypeInvalidRequest, "", "Invalid API Key provided: sk_test_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := stripeClient(t, base, tt.key, 0).Customers.Get(tt.id, nil)
			var se *stripe.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *stripe.Error", err, err)
			}
			if se.HTTPStatusCode != tt.wantStatus || se.Type != tt.wantType || se.Code != tt.wantCode || !strings.HasPrefix(se.Msg, tt.wantMsg) {
				t.Errorf("error = %d %s %s %q; want %d %s %s %q…", se.HTTPStatusCode, se.Type, se.Code, se.Msg, tt.wantStatus, tt.wantType, tt.wantCode, tt.wantMsg)
			}
			if !requestIDPattern.MatchString(se.RequestID) {
				t.Errorf("RequestID = %q", se.RequestID)
			}
			var ire *stripe.InvalidRequestError
			if !errors.As(se.Err, &ire) {
				t.Errorf("stripe-go did not classify it as InvalidRequestError: %T", se.Err)
			}
		})
	}
}

func TestStripeGoRetriesAndRateLimits(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	mustNoErr(t, srv.PutCustomer(map[string]any{"id": "cus_1"}))

	// stripe-go retries a GET that failed with 500 (after ~0.5s of backoff).
	srv.FailNext(1, http.StatusInternalServerError)
	if _, err := stripeClient(t, base, testKey, 1).Customers.Get("cus_1", nil); err != nil {
		t.Fatalf("one 500 with one retry allowed: %v", err)
	}

	// It does not retry rate_limit 429s: the error reaches the caller.
	srv.FailNext(1, http.StatusTooManyRequests)
	_, err := stripeClient(t, base, testKey, 1).Customers.Get("cus_1", nil)
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != 429 || se.Code != stripe.ErrorCodeRateLimit {
		t.Fatalf("err = %v, want a 429 rate_limit *stripe.Error", err)
	}
	if _, err := stripeClient(t, base, testKey, 0).Customers.Get("cus_1", nil); err != nil {
		t.Fatalf("after the 429: %v", err)
	}
}

func TestStripeGoIteratesEvents(t *testing.T) {
	t.Parallel()
	srv := stripeapi.New(stripeapi.Options{APIKeys: []string{testKey}, Now: func() time.Time { return fixtureNow }})
	base, requests := countingServer(t, srv, "/v1/events")
	all, undelivered := seedMany(t, srv, 250)
	sc := stripeClient(t, base, testKey, 0)

	collect := func(params *stripe.EventListParams) []string {
		t.Helper()
		requests.Store(0)
		var ids []string
		it := sc.Events.List(params)
		for it.Next() {
			ids = append(ids, it.Event().ID)
		}
		mustNoErr(t, it.Err())
		return ids
	}

	t.Run("delivery_success=false across pages", func(t *testing.T) {
		params := &stripe.EventListParams{DeliverySuccess: stripe.Bool(false)}
		params.Limit = stripe.Int64(25)
		got := collect(params)
		if !slices.Equal(got, undelivered) {
			t.Errorf("iterated %d ids, want the %d undelivered ones newest first", len(got), len(undelivered))
		}
		if want := int64((len(undelivered) + 24) / 25); requests.Load() != want {
			t.Errorf("%d list requests, want %d pages", requests.Load(), want)
		}
	})

	t.Run("types and created range as stripe-go encodes them", func(t *testing.T) {
		from := fixtureNow.Add(-2*time.Hour).Unix() + 30 // leaves out the 90 oldest
		params := &stripe.EventListParams{
			Types:        []*string{stripe.String("invoice.paid"), stripe.String("charge.refunded")},
			CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: from},
		}
		params.Limit = stripe.Int64(10)
		got := collect(params)
		var want []string
		for _, e := range srv.Events() {
			if e.Created >= from && (e.Type == "invoice.paid" || e.Type == "charge.refunded") {
				want = append(want, e.ID)
			}
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("got %d ids, want %d", len(got), len(want))
		}
	})

	t.Run("ending_before walks towards the newest", func(t *testing.T) {
		params := &stripe.EventListParams{}
		params.EndingBefore = stripe.String(all[len(all)-1])
		params.Limit = stripe.Int64(100)
		got := collect(params)
		want := slices.Clone(all[:len(all)-1])
		slices.Reverse(want)
		if !slices.Equal(got, want) {
			t.Errorf("got %d ids, want the other 249 oldest first", len(got))
		}
	})
}
