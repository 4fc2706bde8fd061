package testkit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// TestNATSCluster: three nodes hold the catalogue's streams with three
// replicas; when the STRIPE stream's leader is shut down another node
// takes over and a publish is stored; restarted on its store directory,
// the old leader catches up with what it missed.
func TestNATSCluster(t *testing.T) {
	c := testkit.NATSCluster(t, 3)
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("STRIPE: %d replicas, cluster %+v; want 3 (a leader and two followers)", info.Config.Replicas, info.Cluster)
	}
	name, err := testkit.StreamLeaderName(ctx, js, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.StreamLeader(natsbus.StreamStripe)
	if leader < 0 || c.Nodes[leader].Name != name || c.Node(name) != leader {
		t.Fatalf("leader by the servers: %d, by stream info: %s", leader, name)
	}

	publish := func(i int) {
		t.Helper()
		id := fmt.Sprintf("evt_cluster%d", i)
		if _, err := js.Publish(ctx, "stripe.events.customer.created", []byte(id), jetstream.WithMsgID(id)); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	publish(1)
	c.Shutdown(leader)
	testkit.WaitFor(t, 30*time.Second, "a new STRIPE leader", func() bool {
		l := c.StreamLeader(natsbus.StreamStripe)
		return l >= 0 && l != leader
	})
	publish(2)

	c.Restart(leader)
	testkit.WaitFor(t, 30*time.Second, "the restarted node to catch up", func() bool {
		info, err := s.Info(ctx)
		if err != nil || info.State.Msgs != 2 || info.Cluster == nil {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Lag != 0 {
				return false
			}
		}
		return len(info.Cluster.Replicas) == 2
	})
}
