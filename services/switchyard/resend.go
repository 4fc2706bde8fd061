package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/spf13/cobra"
)

const resendLong = `Like Stripe's "Resend" of an event: fetches the event from the Stripe API
(GET /v1/events/{id}) and delivers it to the gateway, signed, as Stripe does.

The Stripe API is the one --stripe-api-base / STRIPE_API_BASE names, or Stripe
itself when only STRIPE_API_KEY is set (a restricted key with Events: read);
else the dev hub's emulator (its --data-dir/stripe-api.json).

The gateway deduplicates by event id: a resend of an event it already stored
within the dedup window (NATS_DUPLICATE_WINDOW, default 1h) answers 200 with
"duplicate": true and stores nothing, so nothing downstream runs again; resend
says so. After the window the event is stored and handled again, and the
consumers' keyed side effects make that harmless. Stripe keeps events 30 days.`

// reEventArg is an event id as resend accepts it.
var reEventArg = regexp.MustCompile(`^evt_[A-Za-z0-9_]{1,255}$`)

// resendOptions are resend's flags.
type resendOptions struct {
	url, secret, dataDir, stripeAPIBase string
	asJSON                              bool
}

// resent is what resend reports.
type resent struct {
	EventID   string     `json:"event_id"`
	Type      string     `json:"type"`
	StripeAPI string     `json:"stripe_api"`
	Duplicate bool       `json:"duplicate"`
	Delivery  sendResult `json:"delivery"`
}

// newResendCmd is `switchyard resend`.
func newResendCmd(c *cliIO) *cobra.Command {
	var o resendOptions
	cmd := &cobra.Command{
		Use:     "resend [flags] evt_…",
		Short:   "fetch an event from the Stripe API and deliver it to the gateway again",
		Long:    resendLong,
		Example: "  switchyard resend evt_1O5cugGgdF1VjufLgEvxRpek\n  STRIPE_API_KEY=rk_live_… switchyard resend --webhook-url https://hub.example.com/webhooks/stripe evt_…",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("want one event id evt_…, got %d argument(s)", len(args))
			}
			if !reEventArg.MatchString(args[0]) {
				return usageErrorf("%q is not an event id (evt_…)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return resendCmd(cmd.Context(), o, args[0], c.getenv, c.stdout)
		},
	}
	fs := cmd.Flags()
	webhookURLFlag(fs, &o.url, c.getenv, false)
	fs.StringVar(&o.secret, "secret", "", "the `whsec_...` signing secret (default: STRIPE_WEBHOOK_SECRET, else the one 'switchyard dev' saved in --data-dir)")
	dataDirFlag(fs, &o.dataDir, "the dev hub's data folder: its signing secret and its Stripe API emulator (stripe-api.json)", false)
	stripeAPIBaseFlag(fs.StringVar, &o.stripeAPIBase)
	jsonFlag(fs, &o.asJSON)
	return cmd
}

func resendCmd(ctx context.Context, o resendOptions, id string, getenv func(string) string, stdout io.Writer) error {
	api, found, err := resolveStripeAPI(getenv, o.stripeAPIBase, o.dataDir)
	if err != nil {
		return err
	}
	if !found {
		return withCode(codeInvalid, fmt.Errorf("no Stripe API to fetch %s from: set STRIPE_API_KEY (a key with Events: read), or run 'switchyard dev' (its emulator, in %s)", id, o.dataDir))
	}
	secret := o.secret
	if secret == "" {
		if secret, err = webhookSecret(getenv, o.dataDir); err != nil {
			return withCode(codeInvalid, fmt.Errorf("%w (or pass --secret)", err))
		}
	}
	raw, err := api.fetchEvent(ctx, id)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", id, err)
	}
	var head struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.ID != id {
		return fmt.Errorf("fetch %s: the Stripe API at %s answered something else than that event (id %q)", id, api.URL, head.ID)
	}
	rep := resent{EventID: id, Type: head.Type, StripeAPI: api.URL}
	rep.Delivery = post(ctx, &http.Client{Timeout: 30 * time.Second}, o.url, raw, secret, "", false, false)
	rep.Delivery.N = 1
	var answer struct {
		Duplicate bool `json:"duplicate"`
	}
	_ = json.Unmarshal(rep.Delivery.Body, &answer)
	rep.Duplicate = answer.Duplicate
	failure := failedSends([]sendResult{rep.Delivery})
	if o.asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
		return failure
	}
	fmt.Fprintf(stdout, "Resent %s %s from the Stripe API at %s\n", rep.Type, id, api.URL)
	printSendResults(stdout, []sendResult{rep.Delivery}, 1)
	if rep.Duplicate {
		fmt.Fprintf(stdout, "duplicate: the gateway already stored %s within its dedup window (NATS_DUPLICATE_WINDOW, default 1h);\n"+
			"this copy was dropped and nothing downstream runs again. To exercise the hub with a new event, use 'switchyard trigger'.\n", id)
	}
	return failure
}
