package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/natsbus"
)

// Cluster is a JetStream cluster of embedded nats-server nodes owned by one
// test: each node has its own store directory, client port and route port,
// and all of them route to each other, as a production 3-node cluster does.
type Cluster struct {
	t     testing.TB
	Name  string // the cluster's name
	Nodes []*ClusterNode
	// URL lists every node's client URL, comma-separated: a client given it
	// (NATS_URL) fails over to another node when its own goes away.
	URL string
}

// ClusterNode is one server of a Cluster. Server is nil while it is down.
type ClusterNode struct {
	Name        string // server name, as stream info reports a leader
	Port        int    // client port
	ClusterPort int    // route port
	StoreDir    string
	Server      *server.Server
}

// NATSCluster starts n embedded JetStream servers as one cluster, waits
// until the cluster has a meta leader, and migrates natsbus's catalogue
// onto it with n replicas (as `switchyard migrate` with
// NATS_STREAM_REPLICAS=n would). Every node is shut down when the test ends.
func NATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("testkit: a cluster of %d nodes", n)
	}
	ports := FreePorts(t, 2*n)
	c := &Cluster{t: t, Name: "switchyard-test-" + randomHex(3)}
	var urls []string
	for i := range n {
		node := &ClusterNode{Name: fmt.Sprintf("n%d", i+1), Port: ports[i], ClusterPort: ports[n+i], StoreDir: t.TempDir()}
		c.Nodes = append(c.Nodes, node)
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(node.Port))
	}
	c.URL = strings.Join(urls, ",")
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Shutdown(i)
		}
	})
	// Start them all before waiting on any: a node is ready for clients
	// only once it has routes, and JetStream needs a quorum to elect.
	for i := range c.Nodes {
		c.start(i)
	}
	for i, node := range c.Nodes {
		if !node.Server.ReadyForConnections(30 * time.Second) {
			t.Fatalf("testkit: cluster node %d (%s) not ready within 30s", i, node.Name)
		}
	}
	WaitFor(t, 30*time.Second, "a JetStream meta leader in the cluster", func() bool { return c.MetaLeader() >= 0 })

	_, js := c.Connect(t)
	// Three R3 streams' elections on one loaded machine (CI runs packages in
	// parallel under the race detector) can take most of a minute: allow two.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// Right after the election a node can still answer "JetStream not
	// enabled" or time out while it catches up with the meta group: retry.
	var err error
	for {
		if _, err = natsbus.Migrate(ctx, js, natsbus.Options{Replicas: n}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testkit: migrate the NATS cluster with %d replicas: %v", n, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, name := range natsbus.StreamNames() {
		WaitFor(t, 30*time.Second, "a leader for stream "+name, func() bool { return c.StreamLeader(name) >= 0 })
	}
	return c
}

// routes are every node's route URL; a node ignores its own.
func (c *Cluster) routes() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, "nats-route://127.0.0.1:"+strconv.Itoa(n.ClusterPort))
	}
	return out
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	node := c.Nodes[i]
	for _, p := range []int{node.Port, node.ClusterPort} {
		// A taken port shows only as a node that never becomes ready.
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			c.t.Fatalf("testkit: cluster node %s: %v", node.Name, err)
		}
		_ = l.Close()
	}
	s, err := server.NewServer(&server.Options{
		ServerName: node.Name,
		Host:       "127.0.0.1",
		Port:       node.Port,
		JetStream:  true,
		StoreDir:   node.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: c.Name,
			Host: "127.0.0.1",
			Port: node.ClusterPort,
		},
		Routes: server.RoutesFromStr(strings.Join(c.routes(), ",")),
		// Bounded so a runaway test cannot fill the machine's memory or disk.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  8 << 30,
	})
	if err != nil {
		c.t.Fatalf("testkit: cluster node %s: %v", node.Name, err)
	}
	go s.Start()
	node.Server = s
}

// Shutdown stops node i (a crash as far as the others can tell: its routes
// and clients drop at once); its store directory is kept for Restart.
func (c *Cluster) Shutdown(i int) {
	node := c.Nodes[i]
	if node.Server != nil {
		node.Server.Shutdown()
		node.Server.WaitForShutdown()
		node.Server = nil
	}
}

// Restart starts node i again on its ports and store directory and waits
// until it accepts clients; it then catches up with the cluster by itself.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Shutdown(i)
	c.start(i)
	if !c.Nodes[i].Server.ReadyForConnections(30 * time.Second) {
		c.t.Fatalf("testkit: cluster node %s not ready within 30s of its restart", c.Nodes[i].Name)
	}
}

// MetaLeader is the index of the node leading the JetStream meta group, or
// -1 while there is none.
func (c *Cluster) MetaLeader() int {
	for i, n := range c.Nodes {
		if n.Server != nil && n.Server.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader is the index of the running node that leads stream, or -1
// while none does (during an election). It asks the servers themselves, so
// it answers at once even while clients are failing over.
func (c *Cluster) StreamLeader(stream string) int {
	for i, n := range c.Nodes {
		if n.Server != nil && n.Server.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// Node is the index of the node named name (as stream info's
// Cluster.Leader reports it), or -1.
func (c *Cluster) Node(name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// StreamLeaderName asks JetStream, through js, which server leads stream:
// what a client sees, as opposed to StreamLeader's view from the servers.
func StreamLeaderName(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", errors.New("testkit: stream " + stream + " has no leader")
	}
	return info.Cluster.Leader, nil
}

// Connect returns a client connection to the cluster (every node's URL, so
// it fails over) and its JetStream context, closed when the test ends.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("testkit: connect NATS cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testkit: jetstream: %v", err)
	}
	return nc, js
}
