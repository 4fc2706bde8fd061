// Command switchyard is the hub's operator CLI and its local composition
// root: `switchyard dev` runs every service in one process for local use,
// and `switchyard migrate` is the one step that creates and changes the
// streams, consumers and tables the services need.
//
// It is the only module that imports services; services never import each
// other (services → platform → proto).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/switchyard/switchyard/platform/lifecycle"
)

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `switchyard — the Switchyard hub's CLI

Usage:
  switchyard dev  [flags]          run the whole hub locally (what 'make run' does)
  switchyard migrate [--json]      create or update the streams, consumers and tables the services need
  switchyard send [flags] FILE|-   sign a Stripe event JSON and POST it to the gateway
  switchyard dlq list|show|replay|discard   inspect and resolve dead letters
  switchyard rebuild [flags]       rebuild the customer view from the streams
  switchyard reconcile [flags]     publish the Stripe events the hub missed (Events API, last 30 days)
  switchyard trace evt_…|cus_…|EMAIL|ID   one event or customer end to end, with trace ids
  switchyard status [--json]       pipeline health in one screen
  switchyard doctor [--json]       launch readiness: streams, permissions, migrations, secrets, vendors
  switchyard replay-key [--public] make the operator's replay key pair (signed replays)
  switchyard subscriber NAME [flags]   a subscriber's durable consumer and least-privilege NATS user

Run 'switchyard <command> -h' for a command's flags.
`

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "dev":
		err = devCmd(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], getenv, stdout, stderr)
	case "send":
		err = sendCmd(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "dlq":
		err = dlqCmd(ctx, args[1:], getenv, stdout, stderr)
	case "rebuild":
		err = rebuildCmd(ctx, args[1:], getenv, stdout, stderr)
	case "reconcile":
		err = reconcileCmd(ctx, args[1:], getenv, stdout, stderr)
	case "trace":
		err = traceCmd(ctx, args[1:], getenv, stdout, stderr)
	case "status":
		err = statusCmd(ctx, args[1:], getenv, stdout, stderr)
	case "doctor":
		err = doctorCmd(ctx, args[1:], getenv, stdout, stderr)
	case "replay-key":
		err = replayKeyCmd(ctx, args[1:], getenv, stdout, stderr)
	case "subscriber":
		err = subscriberCmd(ctx, args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "switchyard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintln(stderr, "switchyard:", err)
		return 1
	}
	return 0
}
