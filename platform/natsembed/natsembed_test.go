package natsembed_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/natsembed"
)

func TestStartRequiresStoreDir(t *testing.T) {
	t.Parallel()
	s, err := natsembed.Start(natsembed.Options{})
	if err == nil {
		s.Shutdown()
		t.Fatal("Start without StoreDir succeeded")
	}
	if !strings.Contains(err.Error(), "StoreDir") {
		t.Errorf("error %q does not name StoreDir", err)
	}
}

func TestStartJetStream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := natsembed.Start(natsembed.Options{StoreDir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream is not enabled")
	}
	addr := s.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Errorf("listening on %v, want a random loopback port", addr)
	}

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("create a file stream: %v", err)
	}
	if _, err := js.Publish(ctx, "probe.1", []byte("x")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
	if got := s.JetStreamConfig().StoreDir; !strings.HasPrefix(got, dir) {
		t.Errorf("JetStream stores in %s, want under %s", got, dir)
	}
}
