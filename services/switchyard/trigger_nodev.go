//go:build nodev

package main

import "errors"

// Production builds (-tags nodev) link no development module, so they
// carry no event templates: trigger says so, and resend (which fetches the
// event from the Stripe API) is what an operator uses.

var errNoTriggerTemplates = errors.New("this build has no event templates (a production build, -tags nodev): " +
	"use a development build (make build) to trigger, or 'switchyard resend evt_…' to deliver an event Stripe has")

func triggerEventNames() []string { return nil }

func triggerTemplate(string) ([]byte, bool) { return nil, false }

func triggerObjects() map[string][]byte { return nil }
