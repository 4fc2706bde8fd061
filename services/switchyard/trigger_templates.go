//go:build !nodev

package main

import (
	"errors"

	"github.com/switchyard/switchyard/platform/devkit/testkit/fixtures"
)

// The event templates trigger makes events from: the hub's Stripe event
// fixtures, one per event type it handles (a development build links them).

var errNoTriggerTemplates = errors.New("this build has no event templates") // not in development builds

func triggerEventNames() []string { return fixtures.StripeEventNames() }

func triggerTemplate(name string) ([]byte, bool) { return fixtures.StripeEvent(name) }
