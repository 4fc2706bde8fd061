package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/sinktext"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/alerts/slack"
)

// Poster sends one alert; *slack.Client is the implementation.
type Poster interface {
	Post(ctx context.Context, text string) error
}

// criticalFlows are billing subjects whose failed ticket must reach ops at
// once, never folded into a later alert.
var criticalFlows = map[string]bool{
	subjects.BillingSubscriptionCanceled: true, subjects.BillingRefundIssued: true, subjects.BillingDisputeOpened: true,
}

// Alerter turns dead letters and retry storms into alerts. It is safe for
// concurrent use.
type Alerter struct {
	post     Poster
	ledger   *ledger.Ledger
	consumer string
	window   time.Duration // alerts of one kind within it are folded
	storm    int           // CRM retries per minute that make a storm
	log      *slog.Logger
	now      func() time.Time
	console  slack.Console // the only place alerts link to

	mu         sync.Mutex
	lastSent   map[string]time.Time // kind → last alert sent
	suppressed map[string]int       // kind → alerts folded since
	retries    []time.Time          // recent CRM retries
	lastStorm  time.Time
}

// NewAlerter wires the alerting path; alerts link to console's pages when
// it is set.
func NewAlerter(p Poster, l *ledger.Ledger, consumerName string, window time.Duration, storm int, console slack.Console, log *slog.Logger) *Alerter {
	return &Alerter{post: p, ledger: l, consumer: consumerName, window: window, storm: storm, console: console, log: log, now: time.Now,
		lastSent: map[string]time.Time{}, suppressed: map[string]int{}}
}

// HandleDeadLetter alerts on one dead letter (m is the dlq.<consumer>
// message; m.Sequence is its place in the DLQ stream, which the replay
// command names).
func (a *Alerter) HandleDeadLetter(ctx context.Context, m *consumer.Message) error {
	dl, err := consumer.DecodeDeadLetter(m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	if dl.Consumer == a.consumer || strings.HasPrefix(dl.Consumer, a.consumer+"_") {
		// Our own dead letter (Slack refused the alert): alerting on it
		// would loop. It stays in the DLQ for `switchyard dlq list`.
		a.log.ErrorContext(ctx, "an alert could not be delivered; see switchyard dlq list --consumer "+sinktext.Line(dl.Consumer),
			"reason", sinktext.Line(dl.Reason))
		return nil
	}
	key := ledger.Key{Consumer: a.consumer, MessageID: m.ID, Effect: "slack.alert"}
	if _, done, err := a.ledger.Lookup(ctx, key); err != nil || done {
		return err // already alerted (a redelivery), or the ledger is down (retry)
	}
	critical := dl.Consumer == "support" && criticalFlows[dl.OriginalSubject]
	kind := dl.Consumer + "/" + dl.Class.String()
	folded, send := a.admit(kind, critical)
	if !send {
		return nil // counted; the next alert of this kind reports it
	}
	text := a.deadLetterText(dl, m.Sequence, critical, folded)
	_, err = a.ledger.Once(ctx, key, func(ctx context.Context) ([]byte, error) { return nil, a.post.Post(ctx, text) })
	if err != nil {
		a.unadmit(kind, folded)
		return fmt.Errorf("post alert: %w", err)
	}
	return nil
}

// HandleCRMRetry counts crm.contact.pending_retry outcomes and alerts once
// per minute while they come faster than the storm threshold.
func (a *Alerter) HandleCRMRetry(ctx context.Context, m *consumer.Message) error {
	msg, err := subjects.Decode(m.Subject, m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	p, ok := msg.(*crmv1.ContactPendingRetry)
	if !ok {
		return nil
	}
	now := a.now()
	a.mu.Lock()
	cut := now.Add(-time.Minute)
	kept := a.retries[:0]
	for _, t := range a.retries {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	a.retries = append(kept, now)
	n := len(a.retries)
	storm := n >= a.storm && now.Sub(a.lastStorm) >= time.Minute
	a.mu.Unlock()
	if !storm {
		return nil
	}
	text := fmt.Sprintf(":cyclone: CRM retry storm: %d sync retries in the last minute (last: %s, %s). Syncs are delayed, not lost; %s shows any that gave up.",
		n, slack.Code(errclass.FromProto(p.GetErrorClass()).String()), slack.Code(p.GetReason()), slack.Code("switchyard dlq list --consumer crm"))
	if err := a.post.Post(ctx, text); err != nil {
		a.log.WarnContext(ctx, "post storm alert", "error", err)
		return nil // the next retry outcome tries again
	}
	a.mu.Lock()
	a.lastStorm = now
	a.mu.Unlock()
	return nil
}

// Run posts, every window, a summary of alerts folded and not yet
// reported, so a lone folded dead letter is never silent.
func (a *Alerter) Run(ctx context.Context) error {
	t := time.NewTicker(a.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.flushFolded(ctx)
		}
	}
}

func (a *Alerter) flushFolded(ctx context.Context) {
	a.mu.Lock()
	now := a.now()
	pending := map[string]int{}
	for kind, n := range a.suppressed {
		if n > 0 && now.Sub(a.lastSent[kind]) >= a.window {
			pending[kind] = n
			a.suppressed[kind] = 0
			a.lastSent[kind] = now
		}
	}
	a.mu.Unlock()
	for kind, n := range pending {
		consumerName, class, _ := strings.Cut(kind, "/")
		text := fmt.Sprintf(":warning: %d more dead letter(s) in %s (%s) since the last alert: %s",
			n, slack.Code(consumerName), slack.Code(class), slack.Code("switchyard dlq list --consumer "+consumerName+" --class "+class))
		if link := a.console.Link("Failures in the console", "console", "failures"); link != "" {
			text += " · " + link
		}
		if err := a.post.Post(ctx, text); err != nil {
			a.log.WarnContext(ctx, "post folded-alerts summary", "error", err)
			a.mu.Lock()
			a.suppressed[kind] += n
			a.mu.Unlock()
		}
	}
}

// admit decides whether an alert of kind goes out now; it returns how many
// were folded into it.
func (a *Alerter) admit(kind string, critical bool) (folded int, send bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if !critical && now.Sub(a.lastSent[kind]) < a.window {
		a.suppressed[kind]++
		return 0, false
	}
	folded = a.suppressed[kind]
	a.suppressed[kind] = 0
	a.lastSent[kind] = now
	return folded, true
}

// unadmit undoes admit after a failed post, so the retry is sent.
func (a *Alerter) unadmit(kind string, folded int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.lastSent, kind)
	a.suppressed[kind] += folded
}

// deadLetterText is the alert for one dead letter (seq is its place in
// the DLQ stream). Every value from the dead letter goes through
// slack.Code; the only link is to the console's page for it.
func (a *Alerter) deadLetterText(dl *consumer.DeadLetter, seq uint64, critical bool, folded int) string {
	n := strconv.FormatUint(seq, 10)
	var b strings.Builder
	switch {
	case critical:
		b.WriteString(":rotating_light: *CRITICAL* — a support ticket could not be opened")
	case dl.Class == errclass.ClassAuth:
		b.WriteString(":closed_lock_with_key: Credentials rejected")
	default:
		b.WriteString(":warning: Dead letter")
	}
	fmt.Fprintf(&b, " in %s (%s, %d attempt(s))\n", slack.Code(dl.Consumer), slack.Code(dl.Class.String()), dl.Attempts)
	fmt.Fprintf(&b, "Event: %s %s\n", slack.Code(dl.OriginalSubject), slack.Code(dl.OriginalMsgID))
	if who := customer(dl); who != "" {
		fmt.Fprintf(&b, "Customer: %s\n", slack.Code(who))
	}
	fmt.Fprintf(&b, "Reason: %s\n", slack.Code(dl.Reason))
	fmt.Fprintf(&b, "Fix the cause, then: %s (details: %s)", slack.Code("switchyard dlq replay "+n), slack.Code("switchyard dlq show "+n))
	if link := a.console.Link("Open in the console", "console", "failures", n); link != "" {
		b.WriteString(" · " + link)
	}
	if folded > 0 {
		fmt.Fprintf(&b, "\n(+%d more like this since the last alert: %s)", folded,
			slack.Code("switchyard dlq list --consumer "+dl.Consumer+" --class "+dl.Class.String()))
	}
	return b.String()
}

// customer names the dead letter's customer without personal data in full.
func customer(dl *consumer.DeadLetter) string {
	msg, err := subjects.Decode(dl.OriginalSubject, dl.OriginalData)
	if err != nil {
		return ""
	}
	be, ok := msg.(subjects.BillingEvent)
	if !ok {
		return ""
	}
	meta := be.GetMeta()
	parts := []string{meta.GetCanonicalCustomerId()}
	if e := meta.GetEmail(); e != "" {
		parts = append(parts, logging.MaskEmail(e))
	}
	return strings.Join(parts, " ")
}
