// Command switchyard is the hub's operator CLI and its local composition
// root: `switchyard dev` runs every service in one process for local use,
// and `switchyard migrate` is the one step that creates and changes the
// streams, consumers and tables the services need.
//
// It is the only module that imports services; services never import each
// other (services → platform → proto).
//
// The command line is parsed by cobra (github.com/spf13/cobra): one
// command per file (dev.go, send.go, …), each declaring its flags on the
// command it builds; run builds a fresh tree per call, so tests call run
// like main does.
package main

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/platform/lifecycle"
)

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// rootLong is `switchyard --help`'s text above the command list.
const rootLong = `switchyard — the Switchyard hub's CLI.

Exit codes:
  0  success
  1  failure: the command ran and failed (a service unreachable, a request
     refused, an event not delivered)
  2  usage: a wrong command, flag or argument; nothing was done
  3  unhealthy: status or doctor ran and found the hub needing attention
     (status) or not ready to launch (doctor)

With --json, a command prints its result as JSON on stdout and any error
as one JSON object on stderr:
  {"error":{"code":"usage|invalid|not_found|unauthorized|unavailable|unhealthy|internal","message":"…"}}

Flags take two dashes (--json); -h, -n and -c are the short ones. The dev
hub's data folder is --data-dir everywhere (default .switchyard).`

// run parses args, runs the command and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	c := &cliIO{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(c)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil {
		cmd = root
	}
	return c.fail(cmd, args, err)
}

// newRootCmd is the command tree of one run.
func newRootCmd(c *cliIO) *cobra.Command {
	var showVersion, asJSON bool
	root := &cobra.Command{
		Use:           "switchyard",
		Short:         "the Switchyard hub's CLI",
		Long:          rootLong,
		SilenceErrors: true, // run prints them, once, as text or JSON
		SilenceUsage:  true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q (see switchyard --help)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return printVersion(c.stdout, asJSON)
			}
			return usageErrorf("no command given (see switchyard --help)")
		},
		PersistentPreRun: func(cmd *cobra.Command, _ []string) { warnDeprecated(cmd, c.stderr) },
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print the version (as 'switchyard version')")
	root.Flags().BoolVar(&asJSON, "json", false, "with --version: print JSON")
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetIn(c.stdin)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddCommand(
		newDevCmd(c),
		newMigrateCmd(c),
		newSendCmd(c),
		newTriggerCmd(c),
		newResendCmd(c),
		newDLQCmd(c),
		newRebuildCmd(c),
		newReconcileCmd(c),
		newTraceCmd(c),
		newStatusCmd(c),
		newDoctorCmd(c),
		newReplayKeyCmd(c),
		newSubscriberCmd(c),
		newVersionCmd(c),
	)
	return root
}
