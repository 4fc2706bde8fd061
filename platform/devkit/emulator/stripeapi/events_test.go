package stripeapi_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// seedMany adds n synthetic events, three per second (created ties are
// normal for Stripe), in a shuffled order; every third one is undelivered.
// It returns the ids in the order Stripe lists them: newest first, ties going
// to the event added later.
func seedMany(t *testing.T, srv *stripeapi.Server, n int) (all, undelivered []string) {
	t.Helper()
	type ev struct {
		id        string
		created   int64
		delivered bool
		added     int
	}
	evs := make([]ev, n)
	for i := range evs {
		evs[i] = ev{
			id:        fmt.Sprintf("evt_1Emu%06dGgdF1VjufL", i),
			created:   fixtureNow.Add(-2*time.Hour).Unix() + int64(i/3),
			delivered: i%3 != 0,
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	types := []string{"invoice.paid", "customer.updated", "charge.refunded"}
	for i := range evs {
		evs[i].added = i
		raw := syntheticEvent(t, evs[i].id, types[i%len(types)], evs[i].created, false)
		mustNoErr(t, srv.AddEvent(raw, evs[i].delivered))
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.created != b.created {
			return int(b.created - a.created)
		}
		return b.added - a.added
	})
	for _, e := range evs {
		all = append(all, e.id)
		if !e.delivered {
			undelivered = append(undelivered, e.id)
		}
	}
	return all, undelivered
}

func TestListEventsPaginatesForward(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	want, _ := seedMany(t, srv, 250)

	var got []string
	var pages []int
	cursor := ""
	for {
		u := base + "/v1/events?limit=100"
		if cursor != "" {
			u += "&starting_after=" + cursor
		}
		l := decodeList(t, get(t, u, testKey))
		ids := l.ids(t)
		got = append(got, ids...)
		pages = append(pages, len(ids))
		if !l.HasMore {
			break
		}
		if len(pages) > 3 {
			t.Fatalf("more than 3 pages: %v", pages)
		}
		cursor = ids[len(ids)-1]
	}
	if !slices.Equal(pages, []int{100, 100, 50}) {
		t.Errorf("page sizes = %v, want [100 100 50]", pages)
	}
	if !slices.Equal(got, want) {
		t.Errorf("walked %d ids; not the 250 seeded ones newest first without duplicates or gaps", len(got))
	}

	// Default limit is 10.
	if l := decodeList(t, get(t, base+"/v1/events", testKey)); len(l.Data) != 10 || !l.HasMore {
		t.Errorf("default page: %d events, has_more %t; want 10 and true", len(l.Data), l.HasMore)
	}
	// Past the oldest: empty page.
	if l := decodeList(t, get(t, base+"/v1/events?starting_after="+want[249], testKey)); len(l.Data) != 0 || l.HasMore {
		t.Errorf("after the oldest: %d events, has_more %t", len(l.Data), l.HasMore)
	}
}

func TestListEventsPaginatesBackward(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	want, _ := seedMany(t, srv, 250)

	// From the oldest towards the newest: each page is the limit events
	// immediately newer than the cursor, still listed newest first.
	cursor := want[249]
	for i, tt := range []struct {
		from, to int
		hasMore  bool
	}{{149, 249, true}, {49, 149, true}, {0, 49, false}} {
		l := decodeList(t, get(t, base+"/v1/events?limit=100&ending_before="+cursor, testKey))
		ids := l.ids(t)
		if !slices.Equal(ids, want[tt.from:tt.to]) || l.HasMore != tt.hasMore {
			t.Fatalf("page %d: %d ids (first %v), has_more %t; want want[%d:%d], has_more %t",
				i, len(ids), ids[:min(1, len(ids))], l.HasMore, tt.from, tt.to, tt.hasMore)
		}
		cursor = ids[0]
	}
	if l := decodeList(t, get(t, base+"/v1/events?ending_before="+want[0], testKey)); len(l.Data) != 0 || l.HasMore {
		t.Errorf("before the newest: %d events, has_more %t", len(l.Data), l.HasMore)
	}
}

// seedFilterSet adds the eleven fixture envelopes (three of them
// undelivered), one event older than 30 days and one live-mode event. It
// returns the fixture ids by name.
func seedFilterSet(t *testing.T, srv *stripeapi.Server) map[string]string {
	t.Helper()
	undelivered := map[string]bool{"invoice.payment_failed": true, "charge.dispute.created": true, "customer.subscription.deleted": true}
	ids := map[string]string{}
	for _, name := range testkit.StripeEventNames(t) {
		raw, id, _ := fixtureEvent(t, name)
		ids[name] = id
		mustNoErr(t, srv.AddEvent(raw, !undelivered[name]))
	}
	if len(ids) != 11 {
		t.Fatalf("%d fixture events, want 11", len(ids))
	}
	old := fixtureNow.Add(-stripeapi.EventRetention - time.Second).Unix()
	mustNoErr(t, srv.AddEvent(syntheticEvent(t, "evt_old", "invoice.paid", old, false), false))
	mustNoErr(t, srv.AddEvent(syntheticEvent(t, "evt_live", "invoice.paid", fixtureNow.Unix()-60, true), false))
	ids["old"], ids["live"] = "evt_old", "evt_live"
	return ids
}

func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	ids := seedFilterSet(t, srv)
	newestFirst := []string{
		"customer.subscription.deleted", "invoice.paid", "checkout.session.completed", "charge.refunded",
		"charge.dispute.created", "invoice.payment_failed", "customer.subscription.updated",
		"customer.subscription.created", "customer.updated.email-set", "customer.updated", "customer.created",
	}
	except := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(newestFirst), func(n string) bool { return slices.Contains(drop, n) })
	}

	tests := []struct {
		name  string
		query string
		key   string
		want  []string // fixture names, newest first
	}{
		{"no filter: 30 days, test mode", "", testKey, newestFirst},
		{"type exact", "type=invoice.paid", testKey, []string{"invoice.paid"}},
		{"type wildcard suffix", "type=invoice.*", testKey, []string{"invoice.paid", "invoice.payment_failed"}},
		{"type wildcard spans dots", "type=customer.*", testKey, []string{
			"customer.subscription.deleted", "customer.subscription.updated", "customer.subscription.created",
			"customer.updated.email-set", "customer.updated", "customer.created"}},
		{"type wildcard prefix", "type=*.created", testKey, []string{
			"charge.dispute.created", "customer.subscription.created", "customer.created"}},
		{"type with no match", "type=payout.paid", testKey, nil},
		{"types[]", "types[]=charge.refunded&types[]=invoice.paid", testKey, []string{"invoice.paid", "charge.refunded"}},
		{"types[n] as stripe-go sends", "types[0]=charge.refunded&types[1]=customer.created", testKey, []string{"charge.refunded", "customer.created"}},
		{"types are exact names", "types[]=invoice.*", testKey, nil},
		{"delivery_success=false", "delivery_success=false", testKey, []string{
			"customer.subscription.deleted", "charge.dispute.created", "invoice.payment_failed"}},
		{"delivery_success=true", "delivery_success=true", testKey, except(
			"customer.subscription.deleted", "charge.dispute.created", "invoice.payment_failed")},
		{"created[gte] and created[lte]", "created[gte]=1698249720&created[lte]=1698250500", testKey, []string{
			"charge.refunded", "charge.dispute.created", "invoice.payment_failed", "customer.subscription.updated"}},
		{"created[gt] and created[lt]", "created[gt]=1698249720&created[lt]=1698250500", testKey, []string{
			"charge.dispute.created", "invoice.payment_failed"}},
		{"created exact", "created=1698249604", testKey, []string{"customer.updated"}},
		{"created range cannot reach past 30 days", "created[lte]=1698249600", testKey, []string{"customer.created"}},
		{"type, delivery and created together", "type=invoice.*&delivery_success=false&created[gte]=1698249000", testKey,
			[]string{"invoice.payment_failed"}},
		{"live key sees live events only", "", liveKey, []string{"live"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := decodeList(t, get(t, base+"/v1/events?limit=100&"+tt.query, tt.key))
			var want []string
			for _, n := range tt.want {
				want = append(want, ids[n])
			}
			if got := l.ids(t); !slices.Equal(got, want) || l.HasMore {
				t.Errorf("got %v (has_more %t)\nwant %v", got, l.HasMore, want)
			}
		})
	}
}

func TestListEventsCursorIgnoresFilters(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	ids := seedFilterSet(t, srv)
	// The cursor is an invoice event; the filter asks for customer events
	// older than it.
	l := decodeList(t, get(t, base+"/v1/events?type=customer.*&limit=2&starting_after="+ids["invoice.payment_failed"], testKey))
	want := []string{ids["customer.subscription.updated"], ids["customer.subscription.created"]}
	if got := l.ids(t); !slices.Equal(got, want) || !l.HasMore {
		t.Errorf("got %v has_more %t, want %v has_more true", got, l.HasMore, want)
	}
}

func TestRetrieveEventWindowAndMode(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	seedFilterSet(t, srv)
	for _, tt := range []struct {
		id, key string
		status  int
		message string
	}{
		{"evt_old", testKey, 404, "No such event: 'evt_old'"},
		{"evt_live", testKey, 404, "No such event: 'evt_live'; a similar object exists in live mode, but a test mode key was used to make this request."},
		{"evt_live", liveKey, 200, ""},
	} {
		r := get(t, base+"/v1/events/"+tt.id, tt.key)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.id, r.status, tt.status, r.body)
			continue
		}
		if tt.status == 404 {
			if e := decodeError(t, r).Error; e.Message != tt.message || e.Code != "resource_missing" {
				t.Errorf("%s: error %+v, want %q", tt.id, e, tt.message)
			}
		}
	}
}

func TestListEventsValidation(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})
	ids := seedFilterSet(t, srv)
	manyTypes := url.Values{}
	for i := range 21 {
		manyTypes.Add("types[]", fmt.Sprintf("type.%d", i))
	}

	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantParam  string
		wantCode   string
		wantMsg    string // prefix
	}{
		{"limit 1", "limit=1", 200, "", "", ""},
		{"limit 100", "limit=100", 200, "", "", ""},
		{"limit 0", "limit=0", 400, "limit", "", "Invalid limit: must be between 1 and 100"},
		{"limit 101", "limit=101", 400, "limit", "", "Invalid limit: must be between 1 and 100"},
		{"limit negative", "limit=-5", 400, "limit", "", "Invalid limit"},
		{"limit not a number", "limit=ten", 400, "limit", "parameter_invalid_integer", "Invalid integer: ten"},
		{"limit empty", "limit=", 400, "limit", "parameter_invalid_empty", "You passed an empty string for 'limit'."},
		{"delivery_success not a boolean", "delivery_success=yes", 400, "delivery_success", "", "Invalid boolean: yes"},
		{"created[gte] not a number", "created[gte]=yesterday", 400, "created[gte]", "parameter_invalid_integer", "Invalid integer: yesterday"},
		{"created operator unknown", "created[after]=1", 400, "created[after]", "parameter_unknown", "Received unknown parameter: created[after]"},
		{"unknown parameter", "customer=cus_1", 400, "customer", "parameter_unknown", "Received unknown parameter: customer"},
		{"both cursors", "starting_after=" + ids["invoice.paid"] + "&ending_before=" + ids["charge.refunded"], 400,
			"ending_before", "", "You may only specify one of these parameters: ending_before, starting_after."},
		{"type and types", "type=invoice.*&types[]=invoice.paid", 400, "type", "", "You may only specify one of these parameters: type, types."},
		{"more than 20 types", manyTypes.Encode(), 400, "types", "", "Invalid array"},
		{"unknown starting_after", "starting_after=evt_nope", 404, "starting_after", "resource_missing", "No such event: 'evt_nope'"},
		{"unknown ending_before", "ending_before=evt_nope", 404, "ending_before", "resource_missing", "No such event: 'evt_nope'"},
		{"cursor in the other mode", "starting_after=evt_live", 404, "starting_after", "resource_missing", "No such event: 'evt_live'"},
		{"empty cursor", "starting_after=", 400, "starting_after", "parameter_invalid_empty", "You passed an empty string for 'starting_after'."},
		{"expand", "expand[]=data.request", 400, "expand[]", "", "stripeapi: expand is not emulated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, base+"/v1/events?"+tt.query, testKey)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			e := decodeError(t, r).Error
			if e.Type != "invalid_request_error" || e.Param != tt.wantParam || e.Code != tt.wantCode || !strings.HasPrefix(e.Message, tt.wantMsg) {
				t.Errorf("error = %+v\nwant param %q code %q message %q…", e, tt.wantParam, tt.wantCode, tt.wantMsg)
			}
		})
	}
}
