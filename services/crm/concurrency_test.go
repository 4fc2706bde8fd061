package crm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/crm"
)

// Issue 14, the crm half of TestEachTicketOnceUnderConcurrentDeliveries:
// two deliveries of one message in flight at once must not send its
// contact update twice. Two replicas share NATS and the database; the
// durable's AckWait is 1 s while every HubSpot answer takes 1.2 s (so each
// upsert outlives AckWait and is kept alive by InProgress); every one of
// 500 failed payments reaches the handlers twice, as the original and,
// right behind it, a replay of it (its own Nats-Msg-Id, handled under the
// original's id), racing each other across the replicas. HubSpot must see
// each payment's contact update exactly once in a batch upsert that
// succeeded, and crm must publish exactly 500 crm.contact.synced.
//
// The upsert itself is idempotent (by email), so HubSpot's contacts alone
// would not show a doubled effect; the count of inputs does (with the
// ledger's claim out of the way each update goes out twice, the batcher
// holding the second for a later batch: 998 of 1000 went out). Start-up's
// property checks are answered at once; 32 workers a replica (as many as
// the ledger's claims) finish in about half a minute.
func TestEachContactUpdateOnceUnderConcurrentDeliveries(t *testing.T) {
	const n = 500
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx := context.Background()
	for _, d := range natsbus.Durables(natsbus.Options{}) {
		if d.Name == crm.ConsumerName {
			d.AckWait = time.Second // as `switchyard migrate` would apply it
			if _, err := js.UpdateConsumer(ctx, d.Stream, d.Config()); err != nil {
				t.Fatal(err)
			}
		}
	}
	hub := hubspot.New(hubspot.Options{Tokens: map[string][]string{token: nil}, TenSecondLimit: -1, DailyLimit: -1})
	slow := &upsertCounter{next: hub, delay: 1200 * time.Millisecond, sent: map[string]int{}}
	api := httptest.NewServer(slow)
	t.Cleanup(api.Close)
	db := testkit.Postgres(t)
	for range 2 {
		startCRMReplica(t, map[string]string{
			"CRM_ADDR": testkit.FreeAddr(t), "NATS_URL": b.URL, "DATABASE_URL": db, "LOG_LEVEL": "error",
			"HUBSPOT_TOKEN": token, "HUBSPOT_BASE_URL": api.URL, "CRM_WORKERS": "32",
		})
	}

	for i := range n {
		id := "pf_" + strconv.Itoa(i)
		m := meta(id)
		m.CanonicalCustomerId = "cust_" + strconv.Itoa(i)
		m.StripeCustomerId = "cus_" + strconv.Itoa(i)
		m.Email = "payer" + strconv.Itoa(i) + "@example.com"
		ev := &billingv1.PaymentFailed{Meta: m, InvoiceId: "in_" + strconv.Itoa(i), Amount: 4900, Currency: "usd", AttemptCount: 1,
			NextPaymentAttempt: timestamppb.Now()}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []nats.Header{
			{wire.HeaderMsgID: {id}},
			{wire.HeaderMsgID: {id + ":replay"}, consumer.HeaderReplayOf: {id}},
		} {
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects.BillingPaymentFailed, Data: data, Header: h}); err != nil {
				t.Fatal(err)
			}
		}
	}

	cons, err := js.Consumer(ctx, natsbus.StreamBilling, crm.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	// Not WaitFor: on a failure the counts below say more than a timeout.
	for deadline := time.Now().Add(55 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= 2*n {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("both deliveries of every payment not handled within 55s: %+v, %v", info, err)
			break
		}
	}
	sent := slow.counts()
	total, twice := 0, 0
	for i := range n {
		c := sent["payer"+strconv.Itoa(i)+"@example.com"]
		total += c
		if c != 1 {
			twice++
		}
	}
	if total != n || len(sent) != n {
		t.Errorf("HubSpot took %d contact updates for %d emails, want %d for %d", total, len(sent), n, n)
	}
	if twice > 0 {
		t.Errorf("%d of %d payments' contact updates were not sent exactly once", twice, n)
	}
	if got := len(hub.Contacts()); got != n {
		t.Errorf("%d contacts in HubSpot, want %d", got, n)
	}
	if got := len((&env{js: js}).outcomes(t, subjects.CRMContactSynced)); got != n {
		t.Errorf("%d crm.contact.synced outcomes, want %d", got, n)
	}
}

// upsertCounter answers every batch upsert after delay and counts, per email,
// the inputs of batch upserts HubSpot accepted whole (200).
type upsertCounter struct {
	next  http.Handler
	delay time.Duration

	mu   sync.Mutex
	sent map[string]int
}

func (u *upsertCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/crm/v3/objects/contacts/batch/upsert" {
		u.next.ServeHTTP(w, r) // start-up's property checks: no need to wait
		return
	}
	select {
	case <-time.After(u.delay):
	case <-r.Context().Done():
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	u.next.ServeHTTP(rec, r)
	if rec.status != http.StatusOK {
		return
	}
	var body struct {
		Inputs []struct {
			ID string `json:"id"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, in := range body.Inputs {
		u.sent[in.ID]++
	}
}

func (u *upsertCounter) counts() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]int, len(u.sent))
	for k, v := range u.sent {
		out[k] = v
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// startCRMReplica runs one crm.Run with vars until the test ends.
func startCRMReplica(t *testing.T, vars map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- crm.Run(ctx, config.MapEnv(vars), &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("crm.Run: %v", err)
		}
	})
	addr := vars["CRM_ADDR"]
	testkit.WaitFor(t, 20*time.Second, "crm ready", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("crm exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
