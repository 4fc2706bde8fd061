package alerts

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/alerts/slack"
)

type recordingPoster struct {
	mu    sync.Mutex
	posts []string
}

func (p *recordingPoster) Post(_ context.Context, text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posts = append(p.posts, text)
	return nil
}

func (p *recordingPoster) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.posts...)
}

// TestAlertStateIsSharedAndSurvivesRestarts: two replicas of the alerter
// and, later, a restarted one, over one database. A dead letter folds into
// the other replica's alert of its kind (and its redelivery is not counted
// again); the restarted alerter reports exactly the one folded; CRM retries
// counted by different replicas make one alert per storm, whichever replica
// sees the retry that makes it, and one message when it is over.
func TestAlertStateIsSharedAndSurvivesRestarts(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	post := &recordingPoster{}
	clock := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	replica := func() *Alerter {
		a := NewAlerter(post, pool, ConsumerName, time.Hour, 3, slack.Console{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		a.now = func() time.Time { return clock }
		return a
	}
	a, b := replica(), replica()

	deadLetter := func(seq uint64) *consumer.Message {
		d := &consumer.DeadLetter{OriginalSubject: "billing.payment.failed", OriginalMsgID: "m" + string(rune('0'+seq)), Consumer: "crm",
			Class: errclass.ClassPermanent, Reason: "HubSpot said no", Attempts: 1}
		raw, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return &consumer.Message{Subject: "dlq.crm", Data: raw, ID: "dlq:" + string(rune('0'+seq)), Sequence: seq}
	}
	if err := a.HandleDeadLetter(ctx, deadLetter(1)); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Minute)
	for _, r := range []*Alerter{b, a} { // the second dead letter, then its redelivery to the other replica
		if err := r.HandleDeadLetter(ctx, deadLetter(2)); err != nil {
			t.Fatal(err)
		}
	}
	if got := post.all(); len(got) != 1 {
		t.Fatalf("%d posts, want the first dead letter's alone (the second folds into it on the other replica):\n%s", len(got), strings.Join(got, "\n---\n"))
	}

	restarted := replica()
	clock = clock.Add(30 * time.Minute)
	restarted.flushFolded(ctx)
	if got := post.all(); len(got) != 1 {
		t.Fatalf("summary posted before the window ended: %q", got[1:])
	}
	clock = clock.Add(31 * time.Minute)
	restarted.flushFolded(ctx)
	b.flushFolded(ctx) // another replica's tick reports nothing twice
	got := post.all()
	if len(got) != 2 || !strings.Contains(got[1], ":warning: 1 more dead letter(s) in `crm` (`permanent`)") {
		t.Fatalf("posts after the window: %q, want one summary of exactly one folded dead letter", got)
	}

	retry := func(i int) *consumer.Message {
		p := &crmv1.ContactPendingRetry{EventId: "r" + string(rune('0'+i)), Attempt: 1, Reason: "503 from HubSpot"}
		data, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return &consumer.Message{Subject: subjects.CRMContactPendingRetry, Data: data, ID: "retry-" + string(rune('0'+i))}
	}
	storms := func() int {
		n := 0
		for _, p := range post.all() {
			if strings.Contains(p, "CRM retry storm") {
				n++
			}
		}
		return n
	}
	for i, r := range []*Alerter{a, b, a, b, restarted} { // 1, 2, 2 again, 3 (storm), 4
		id := []int{1, 2, 2, 3, 4}[i]
		clock = clock.Add(time.Second)
		if err := r.HandleCRMRetry(ctx, retry(id)); err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{0: 0, 1: 0, 2: 0, 3: 1, 4: 1}[i]; storms() != want {
			t.Fatalf("after retry %d (%d deliveries): %d storm alerts, want %d", id, i+1, storms(), want)
		}
	}
	// The storm goes on a minute later: no new alert while it lasts.
	clock = clock.Add(61 * time.Second)
	for i := 5; i <= 7; i++ {
		if err := []*Alerter{a, b, restarted}[i%3].HandleCRMRetry(ctx, retry(i)); err != nil {
			t.Fatal(err)
		}
	}
	a.checkStorm(ctx)
	if storms() != 1 {
		t.Fatalf("%d storm alerts while one storm lasts, want 1", storms())
	}
	over := func() []string {
		var out []string
		for _, p := range post.all() {
			if strings.Contains(p, "CRM retry storm over") {
				out = append(out, p)
			}
		}
		return out
	}
	if len(over()) != 0 {
		t.Fatalf("the storm was declared over while retries still came: %q", over())
	}
	// A quiet minute: the storm is over, said once whichever replica looks.
	clock = clock.Add(61 * time.Second)
	a.checkStorm(ctx)
	b.checkStorm(ctx)
	restarted.checkStorm(ctx)
	if got := over(); len(got) != 1 || !strings.Contains(got[0], "after 2m3s: 7 sync retries in all") {
		t.Fatalf("storm-over messages %q, want one saying 7 retries over 2m3s", got)
	}
	// The next storm is alerted again.
	for i := 8; i <= 10; i++ {
		clock = clock.Add(time.Second)
		if err := []*Alerter{a, b, restarted}[i%3].HandleCRMRetry(ctx, retry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if storms() != 3 { // two start alerts and the over message
		t.Fatalf("%d storm messages after a second storm, want 3", storms())
	}
}
