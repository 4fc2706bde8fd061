//go:build !nodev

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchyard/switchyard/platform/devkit/natsembed"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// subscriberUsers are the embedded server's users for the subscribers
// saved in dataDir (`switchyard subscriber`), each with exactly
// natsbus.SubscriberPermissions, and a key that changes whenever they do.
// A subscriber whose name or stream is refused is left out and said.
func subscriberUsers(dataDir string) (users []natsembed.User, key string, problems []string) {
	subs, err := readDevSubscribers(dataDir)
	if err != nil {
		return nil, "", []string{err.Error()}
	}
	var b strings.Builder
	for _, s := range subs {
		p, err := natsbus.SubscriberPermissions(s.Name, s.Stream)
		if err != nil {
			problems = append(problems, fmt.Sprintf("subscriber %s: %v", s.Name, err))
			continue
		}
		users = append(users, natsembed.User{Name: s.Name, Password: s.password, Publish: p.Publish, Subscribe: p.Subscribe})
		fmt.Fprintf(&b, "%s\x00%s\x00%s\x00", s.Name, s.Stream, s.password)
	}
	return users, b.String(), problems
}

// watchSubscribers gives the embedded server ns (started with o) the
// subscribers saved in the data folder as they come and go, checking every
// interval, until the returned stop is called: a subscriber made while
// `make run` runs logs in at once.
func (h *devHub) watchSubscribers(ns *server.Server, o natsembed.Options, key string, interval time.Duration) (stop func()) {
	hub := o.Users[:len(o.Users):len(o.Users)]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			subs, next, problems := subscriberUsers(h.f.dataDir)
			if next == key {
				continue
			}
			for _, p := range problems {
				fmt.Fprintln(h.stderr, "switchyard dev:", p)
			}
			if err := natsembed.SetUsers(ns, o, append(hub, subs...)); err != nil {
				fmt.Fprintln(h.stderr, "switchyard dev: subscribers:", err)
				continue // tried again at the next tick
			}
			key = next
			names := make([]string, len(subs))
			for i, u := range subs {
				names[i] = u.Name
			}
			fmt.Fprintf(h.stdout, "switchyard dev: NATS subscribers now: %s\n", orDefault(strings.Join(names, ", "), "none"))
		}
	}()
	return func() { cancel(); wg.Wait() }
}
