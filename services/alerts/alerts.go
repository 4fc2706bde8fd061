package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
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

// Alerter turns dead letters and retry storms into alerts. Its memory —
// when each kind last went out, what was folded since, the recent CRM
// retries — is in PostgreSQL (state), shared by every replica and kept
// across restarts. It is safe for concurrent use.
type Alerter struct {
	post     Poster
	ledger   *ledger.Ledger
	state    state
	consumer string
	window   time.Duration // alerts of one kind within it are folded
	storm    int           // CRM retries per minute that make a storm
	log      *slog.Logger
	now      func() time.Time
	console  slack.Console // the only place alerts link to
}

// NewAlerter wires the alerting path over pool (Migrate first); alerts
// link to console's pages when it is set.
func NewAlerter(p Poster, pool *pgxpool.Pool, consumerName string, window time.Duration, storm int, console slack.Console, log *slog.Logger) *Alerter {
	l := ledger.New(pool)
	return &Alerter{post: p, ledger: l, state: state{pool: pool, ledger: l}, consumer: consumerName, window: window, storm: storm,
		console: console, log: log, now: time.Now}
}

// HandleDeadLetter alerts on one dead letter (m is the dlq.<consumer>
// message; m.Sequence is its place in the DLQ stream, which the replay
// command names).
func (a *Alerter) HandleDeadLetter(ctx context.Context, m *consumer.Message) error {
	dl, err := deadletter.Decode(m.Header, m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	m.Customer = dl.CustomerID // the customer of alerts' own dead letter, and of its log lines
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
	// The consumer name comes from the dead letter (anyone who may publish
	// to dlq.> wrote it): a key, so made storable.
	kind, _ := sinktext.Truncate(sinktext.Line(dl.Consumer)+"/"+dl.Class.String(), 200, sinktext.Bytes)
	folded, send, err := a.state.admit(ctx, kind, critical, a.now(), a.window, key)
	if err != nil || !send {
		return err // folded: counted, and the next alert of this kind reports it
	}
	text := a.deadLetterText(dl, m.Sequence, critical, folded)
	_, err = a.ledger.Once(ctx, key, func(ctx context.Context) ([]byte, error) { return nil, a.post.Post(ctx, text) })
	if err != nil {
		if uerr := a.state.unadmit(ctx, kind, folded); uerr != nil {
			a.log.WarnContext(ctx, "alert state not restored after a failed post", "error", uerr)
		}
		return fmt.Errorf("post alert: %w", err)
	}
	return nil
}

// HandleCRMRetry counts crm.contact.pending_retry outcomes. When they come
// faster than the storm threshold a minute, a storm starts: one alert,
// whichever replica counts the retry that makes it, not one per event or
// per minute. Its end (see checkStorm) gets one message of its own.
func (a *Alerter) HandleCRMRetry(ctx context.Context, m *consumer.Message) error {
	msg, err := subjects.Decode(m.Subject, m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	p, ok := msg.(*crmv1.ContactPendingRetry)
	if !ok {
		return nil
	}
	m.Customer = p.GetCanonicalCustomerId()
	now := a.now()
	n, first, err := a.state.stormRetry(ctx, m.ID, now)
	if err != nil || !first {
		return err // a redelivery was counted the first time
	}
	if n < a.storm {
		return a.state.stormCount(ctx, crmStorm) // into a storm under way, if any
	}
	started, err := a.state.stormStart(ctx, crmStorm, now, n)
	if err == nil && !started {
		err = a.state.stormCount(ctx, crmStorm)
	}
	if err != nil || !started {
		return err // one is under way (maybe alerted by another replica)
	}
	text := fmt.Sprintf(":cyclone: CRM retry storm: %d sync retries in the last minute (last: %s, %s). Syncs are delayed, not lost; %s shows any that gave up. "+
		"No further alert while it lasts (a reminder each hour); one message when it is over.",
		n, slack.Code(errclass.FromProto(p.GetErrorClass()).String()), slack.Code(p.GetReason()), slack.Code("switchyard dlq list --consumer crm"))
	if err := a.post.Post(ctx, text); err != nil {
		a.log.WarnContext(ctx, "post storm alert", "error", err)
		if err := a.state.stormUndo(ctx, crmStorm, now); err != nil {
			a.log.WarnContext(ctx, "storm state not restored after a failed post", "error", err)
		}
		return nil // the next retry outcome tries again
	}
	return nil
}

// crmStorm names the CRM retry storm in alert_storms.
const crmStorm = "crm_retries"

// checkStorm closes a storm that is over (fewer retries than the threshold
// in the last minute) with one message, and reminds of one still under
// way each hour.
func (a *Alerter) checkStorm(ctx context.Context) {
	now := a.now()
	over, err := a.state.stormOver(ctx, crmStorm, now, a.storm)
	if err != nil {
		a.log.WarnContext(ctx, "check the CRM retry storm", "error", err)
		return
	}
	if over != nil {
		text := fmt.Sprintf(":white_check_mark: CRM retry storm over after %s: %d sync retries in all. Syncs go through again; %s shows any that gave up.",
			now.Sub(over.startedAt).Round(time.Second), over.retries, slack.Code("switchyard dlq list --consumer crm"))
		if err := a.post.Post(ctx, text); err != nil {
			a.log.WarnContext(ctx, "post storm-over message", "error", err)
			if err := a.state.stormReopen(ctx, crmStorm, *over); err != nil {
				a.log.WarnContext(ctx, "storm state not restored after a failed post", "error", err)
			}
		}
		return
	}
	still, err := a.state.stormReminder(ctx, crmStorm, now)
	if err != nil || still == nil {
		return
	}
	text := fmt.Sprintf(":cyclone: CRM retry storm still under way after %s: %d sync retries so far. Syncs are delayed, not lost; %s shows any that gave up.",
		now.Sub(still.startedAt).Round(time.Minute), still.retries, slack.Code("switchyard dlq list --consumer crm"))
	if err := a.post.Post(ctx, text); err != nil {
		a.log.WarnContext(ctx, "post storm reminder", "error", err)
	}
}

// stormCheckEvery is how often a storm's end is looked for.
const stormCheckEvery = 10 * time.Second

// Run posts, every window, a summary of alerts folded and not yet
// reported, so a lone folded dead letter is never silent; and closes (or
// reminds of) a retry storm.
func (a *Alerter) Run(ctx context.Context) error {
	t := time.NewTicker(a.window)
	defer t.Stop()
	st := time.NewTicker(stormCheckEvery)
	defer st.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.flushFolded(ctx)
		case <-st.C:
			a.checkStorm(ctx)
		}
	}
}

func (a *Alerter) flushFolded(ctx context.Context) {
	pending, err := a.state.due(ctx, a.now(), a.window)
	if err != nil {
		a.log.WarnContext(ctx, "read folded alerts", "error", err)
		return
	}
	for kind, n := range pending {
		i := strings.LastIndexByte(kind, '/') // the class has none; a consumer name may
		consumerName, class := kind[:max(i, 0)], kind[i+1:]
		text := fmt.Sprintf(":warning: %d more dead letter(s) in %s (%s) since the last alert: %s",
			n, slack.Code(consumerName), slack.Code(class), slack.Code("switchyard dlq list --consumer "+consumerName+" --class "+class))
		if link := a.console.Link("Failures in the console", "console", "failures"); link != "" {
			text += " · " + link
		}
		if err := a.post.Post(ctx, text); err != nil {
			a.log.WarnContext(ctx, "post folded-alerts summary", "error", err)
			if err := a.state.restore(ctx, kind, n); err != nil {
				a.log.WarnContext(ctx, "folded alerts not restored after a failed post", "kind", kind, "count", n, "error", err)
			}
		}
	}
}

// deadLetterText is the alert for one dead letter (seq is its place in
// the DLQ stream). Every value from the dead letter goes through
// slack.Code; the only link is to the console's page for it.
func (a *Alerter) deadLetterText(dl deadletter.Entry, seq uint64, critical bool, folded int) string {
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

// customer names the dead letter's customer without personal data in
// full: the canonical id the envelope carries (deadletter.Entry.CustomerID),
// and the email of a billing event, masked.
func customer(dl deadletter.Entry) string {
	var parts []string
	if dl.CustomerID != "" {
		parts = append(parts, dl.CustomerID)
	}
	if msg, err := subjects.Decode(dl.OriginalSubject, dl.OriginalData); err == nil {
		if be, ok := msg.(subjects.BillingEvent); ok && be.GetMeta().GetEmail() != "" {
			parts = append(parts, logging.MaskEmail(be.GetMeta().GetEmail()))
		}
	}
	return strings.Join(parts, " ")
}
