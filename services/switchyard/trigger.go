package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// triggerOptions are trigger's flags.
type triggerOptions struct {
	url, secret, dataDir string
	stripeAPIBase        string
	overrides            []string
	list, asJSON         bool
	noRegister           bool
}

const triggerLong = `Like 'stripe trigger': makes a fresh event of a type the hub handles and delivers
it to the gateway, signed, as 'send' does. The event is the hub's fixture of
that type (platform/devkit/testkit/fixtures/stripe/events) with every id made
new — the event's evt_ and each object's (cus_, sub_, in_, ch_, pi_, re_, dp_,
prod_, price_, …), the same old id becoming the same new id everywhere in the
event so its references stay coherent — email addresses given a fresh
subaddress alike (a new customer's story), "created" now and livemode false.

--override PATH=VALUE sets a field of data.object by dot path (numbers index
lists: items.data.0.price.id). VALUE is read as JSON when it is valid JSON
(42, true, null, {"a":1}, "\"42\"" for the string 42), else as a string. Every
part of the path but the last must exist; the last may add a field to an
existing object (metadata.plan=pro). Overrides apply after the new ids.

Before delivering, the event, the object it carries and fresh copies of the
objects it names (a dispute's charge, an invoice's subscription) are
registered with the Stripe API emulator, so the hub's refetches (identity asks
Stripe whose charge a dispute is) find them: the dev hub's (its --data-dir/stripe-api.json), or the
one --stripe-api-base / STRIPE_API_BASE and STRIPE_API_KEY name. With neither,
or when they name Stripe itself, nothing is registered (a note says so).
Development builds only: the event templates are not in the production binary.`

// newTriggerCmd is `switchyard trigger`.
func newTriggerCmd(c *cliIO) *cobra.Command {
	var o triggerOptions
	cmd := &cobra.Command{
		Use:   "trigger [flags] EVENT-TYPE",
		Short: "deliver a fresh event of a type the hub handles (like stripe trigger)",
		Long:  triggerLong,
		Example: `  switchyard trigger --list
  switchyard trigger customer.created
  switchyard trigger customer.updated --override email=new@example.com --override metadata.plan=pro
  switchyard trigger invoice.paid --json`,
		Args: func(_ *cobra.Command, args []string) error {
			if o.list {
				return noArgs(nil, args)
			}
			if len(args) != 1 {
				return usageErrorf("want one event type (see --list), got %d argument(s)", len(args))
			}
			return nil
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return triggerEventNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.list {
				return listTriggers(c.stdout, o.asJSON)
			}
			return triggerCmd(cmd.Context(), o, args[0], c.getenv, c.stdout, c.stderr)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&o.list, "list", false, "list the event types trigger makes")
	fs.StringArrayVar(&o.overrides, "override", nil, "set a field of data.object: `PATH=VALUE` (repeatable)")
	webhookURLFlag(fs, &o.url, c.getenv, false)
	fs.StringVar(&o.secret, "secret", "", "the `whsec_...` signing secret (default: STRIPE_WEBHOOK_SECRET, else the one 'switchyard dev' saved in --data-dir)")
	dataDirFlag(fs, &o.dataDir, "the dev hub's data folder: its signing secret and its Stripe API emulator (stripe-api.json)", false)
	stripeAPIBaseFlag(fs.StringVar, &o.stripeAPIBase)
	fs.BoolVar(&o.noRegister, "no-register", false, "do not register the event with the Stripe API emulator")
	jsonFlag(fs, &o.asJSON)
	return cmd
}

// stripeAPIBaseFlag declares --stripe-api-base (trigger, resend).
func stripeAPIBaseFlag(stringVar func(*string, string, string, string), p *string) {
	stringVar(p, "stripe-api-base", "", "the Stripe API (an emulator) to use instead of the dev hub's; the key is STRIPE_API_KEY (default STRIPE_API_BASE)")
}

// triggered is what trigger reports.
type triggered struct {
	EventID    string            `json:"event_id"`
	Type       string            `json:"type"`
	ObjectID   string            `json:"object_id"`
	IDs        map[string]string `json:"ids"` // fixture id → the new one
	Registered bool              `json:"registered"`
	Related    int               `json:"related_objects"` // objects it names, registered before it
	StripeAPI  string            `json:"stripe_api,omitempty"`
	Note       string            `json:"note,omitempty"` // why it was not registered
	Delivery   sendResult        `json:"delivery"`
}

func triggerCmd(ctx context.Context, o triggerOptions, name string, getenv func(string) string, stdout, stderr io.Writer) error {
	tmpl, ok := triggerTemplate(name)
	if !ok {
		names := triggerEventNames()
		if len(names) == 0 {
			return withCode(codeInvalid, errNoTriggerTemplates)
		}
		return usageErrorf("no event type %q: want one of %s", name, strings.Join(names, ", "))
	}
	overrides, err := parseOverrides(o.overrides)
	if err != nil {
		return err
	}
	ev, err := freshEvent(tmpl, overrides, time.Now())
	if err != nil {
		return err
	}
	secret := o.secret
	if secret == "" {
		if secret, err = webhookSecret(getenv, o.dataDir); err != nil {
			return withCode(codeInvalid, fmt.Errorf("%w (or pass --secret)", err))
		}
	}
	rep := triggered{EventID: ev.id, Type: ev.typ, ObjectID: ev.objectID, IDs: ev.ids}
	if !o.noRegister {
		api, found, err := resolveStripeAPI(getenv, o.stripeAPIBase, o.dataDir)
		switch {
		case err != nil:
			return err
		case !found:
			rep.Note = fmt.Sprintf("no Stripe API emulator (no %s, no STRIPE_API_BASE): the event is not registered, so the hub's refetches of its objects will not find them",
				filepath.Join(o.dataDir, devStripeEmulatorFile))
		case api.isStripe():
			rep.Note = "the Stripe API is Stripe itself (STRIPE_API_KEY without STRIPE_API_BASE): a made-up event cannot be registered there, so the hub's refetches of its objects will not find them"
		default:
			for _, obj := range ev.related {
				if err := api.registerObject(ctx, obj); err != nil {
					return fmt.Errorf("register the objects %s names with the Stripe API emulator (from %s; --no-register skips this): %w", ev.id, api.from, err)
				}
			}
			if err := api.registerEvent(ctx, ev.body); err != nil {
				return fmt.Errorf("register %s with the Stripe API emulator (from %s; --no-register skips this): %w", ev.id, api.from, err)
			}
			rep.Registered, rep.StripeAPI, rep.Related = true, api.URL, len(ev.related)
		}
	}
	rep.Delivery = post(ctx, &http.Client{Timeout: 30 * time.Second}, o.url, ev.body, secret, "", false, false)
	rep.Delivery.N = 1
	failure := failedSends([]sendResult{rep.Delivery})
	if o.asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
		return failure
	}
	if rep.Note != "" {
		fmt.Fprintln(stderr, "note:", rep.Note)
	}
	fmt.Fprintf(stdout, "Triggered %s %s (%s)\n", rep.Type, rep.EventID, rep.ObjectID)
	if rep.Registered {
		fmt.Fprintf(stdout, "  registered with the Stripe API emulator at %s (and %d object(s) it names)\n", rep.StripeAPI, rep.Related)
	}
	printSendResults(stdout, []sendResult{rep.Delivery}, 1)
	return failure
}

// listTriggers prints the event types trigger makes.
func listTriggers(stdout io.Writer, asJSON bool) error {
	type entry struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	var entries []entry
	for _, n := range triggerEventNames() {
		tmpl, _ := triggerTemplate(n)
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(tmpl, &head); err != nil {
			return fmt.Errorf("template %s: %w", n, err)
		}
		entries = append(entries, entry{n, head.Type})
	}
	if len(entries) == 0 {
		return withCode(codeInvalid, errNoTriggerTemplates)
	}
	if asJSON {
		return writeJSON(stdout, entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tEVENT TYPE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\n", e.Name, e.Type)
	}
	return tw.Flush()
}

// override is one --override PATH=VALUE.
type override struct {
	path  string
	value *jsonNode
}

// parseOverrides reads --override values: VALUE as JSON when valid, else
// as a string.
func parseOverrides(raw []string) ([]override, error) {
	var out []override
	for _, r := range raw {
		path, value, ok := strings.Cut(r, "=")
		if !ok || strings.TrimSpace(path) == "" {
			return nil, usageErrorf("--override %q: want PATH=VALUE", r)
		}
		node := scalarNode(value)
		if json.Valid([]byte(value)) {
			n, err := parseJSONTree([]byte(value))
			if err != nil {
				return nil, usageErrorf("--override %q: %v", r, err)
			}
			node = n
		}
		out = append(out, override{path: strings.TrimSpace(path), value: node})
	}
	return out, nil
}

// reStripeID matches Stripe object ids: a lowercase prefix, an underscore,
// an optional test_/live_ (checkout sessions), then at least 10 letters
// and digits. Field names (customer_email, balance_transaction) match the
// shape too but have no digit or capital, which isFreshenable checks.
var reStripeID = regexp.MustCompile(`\b[a-z]{2,10}_(?:test_|live_)?[A-Za-z0-9]{10,}\b`)

// keptPrefixes are ids trigger leaves alone: the account is the same
// account for a fresh event.
var keptPrefixes = []string{"acct_"}

// isFreshenable reports whether a reStripeID match is an id to replace.
func isFreshenable(id string) bool {
	for _, p := range keptPrefixes {
		if strings.HasPrefix(id, p) {
			return false
		}
	}
	suffix := id[strings.LastIndexByte(id, '_')+1:]
	return strings.ContainsAny(suffix, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// builtEvent is an event trigger made.
type builtEvent struct {
	body     []byte
	id, typ  string
	objectID string
	ids      map[string]string
	related  [][]byte // the objects it names, renewed alike (registered before it)
}

// freshEvent makes an event from a template: every Stripe id replaced by a
// new one of the same shape (consistently: an id maps to the same new id
// wherever it appears, in any string), a new request idempotency key,
// "created" now on the event and its object, livemode false everywhere,
// then the overrides applied to data.object.
func freshEvent(tmpl []byte, overrides []override, now time.Time) (builtEvent, error) {
	root, err := parseJSONTree(tmpl)
	if err != nil || !root.object {
		return builtEvent{}, fmt.Errorf("event template: not a JSON object (%v)", err)
	}
	r := renewer{ids: map[string]string{}}
	r.renew(root)
	created := &jsonNode{scalar: json.RawMessage(fmt.Sprint(now.Unix()))}
	root.put("created", created)
	if req := root.get("request"); req != nil {
		if _, ok := req.get("idempotency_key").str(); ok {
			req.put("idempotency_key", scalarNode(newUUID()))
		}
	}
	obj := root.get("data").get("object")
	if obj == nil || !obj.object {
		return builtEvent{}, fmt.Errorf("event template: no data.object")
	}
	if c := obj.get("created"); c != nil && len(c.scalar) > 0 && c.scalar[0] != 'n' {
		obj.put("created", created)
	}
	for _, o := range overrides {
		if err := obj.setPath(o.path, o.value); err != nil {
			return builtEvent{}, usageErrorf("--override %v", err)
		}
	}
	ev := builtEvent{body: root.marshal(), ids: r.ids}
	ev.id, _ = root.get("id").str()
	ev.typ, _ = root.get("type").str()
	ev.objectID, _ = obj.get("id").str()
	if ev.related, err = r.related(triggerObjects(), ev.objectID); err != nil {
		return builtEvent{}, err
	}
	return ev, nil
}

// renewer gives Stripe ids new ones of the same shape, the same new id for
// an id wherever it appears.
type renewer struct {
	ids map[string]string // old id (or email address) → new one
}

func (r renewer) fresh(id string) string {
	if !isFreshenable(id) {
		return id
	}
	if n, ok := r.ids[id]; ok {
		return n
	}
	cut := strings.LastIndexByte(id, '_') + 1
	n := id[:cut] + randomAlnum(len(id)-cut)
	r.ids[id] = n
	return n
}

// renew replaces every id in the strings of root (URLs included) and makes
// it test mode.
func (r renewer) renew(root *jsonNode) {
	root.walk("", func(key string, n *jsonNode) {
		if key == "livemode" && len(n.scalar) > 0 {
			n.scalar = json.RawMessage("false")
			return
		}
		if s, ok := n.str(); ok {
			fresh := reStripeID.ReplaceAllStringFunc(s, r.fresh)
			fresh = reEmail.ReplaceAllStringFunc(fresh, r.freshEmail)
			if fresh != s {
				*n = *scalarNode(fresh)
			}
		}
	})
}

// reEmail matches the email addresses of the fixtures (jenny.rosen@example.com).
var reEmail = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+`)

// freshEmail gives an address a new one at the same domain, with a random
// subaddress, the same new address wherever it appears: a triggered event
// is a new customer's story. With the fixtures' address, every trigger
// would name one email under new Stripe customers — to a CRM that keys
// contacts by email, one contact for many customers, which the hub rightly
// refuses as a conflict for an operator (--override email=… names one on
// purpose).
func (r renewer) freshEmail(addr string) string {
	if n, ok := r.ids[addr]; ok {
		return n
	}
	local, domain, _ := strings.Cut(addr, "@")
	local, _, _ = strings.Cut(local, "+")
	n := local + "+" + strings.ToLower(randomAlnum(8)) + "@" + domain
	r.ids[addr] = n
	return n
}

// related returns renewed copies of the objects of known (fixture objects
// by id) that the renewed ids name, and those they name in turn, but the
// event's own object (newObjectID): what Stripe would hold for an event
// that really happened — the charge a dispute names, its customer, the
// invoice's subscription — so the hub's refetches of a triggered event
// find them. Sorted by new id, for a stable order.
func (r renewer) related(known map[string][]byte, newObjectID string) ([][]byte, error) {
	byNewID := map[string][]byte{}
	for {
		var next []string
		for old, n := range r.ids {
			if _, ok := known[old]; ok && byNewID[n] == nil && n != newObjectID {
				next = append(next, old)
			}
		}
		if len(next) == 0 {
			break
		}
		slices.Sort(next)
		for _, old := range next {
			root, err := parseJSONTree(known[old])
			if err != nil || !root.object {
				return nil, fmt.Errorf("fixture object %s: not a JSON object (%v)", old, err)
			}
			r.renew(root) // may name more ids: the loop goes on
			byNewID[r.ids[old]] = root.marshal()
		}
	}
	var bodies [][]byte
	for _, id := range slices.Sorted(maps.Keys(byNewID)) {
		bodies = append(bodies, byNewID[id])
	}
	return bodies, nil
}

// newUUID is a random (version 4) UUID, the shape of Stripe's
// idempotency keys.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
