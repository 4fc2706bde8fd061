package natsembed_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/natsembed"
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

// TestUsersEmptyAllowDenies guards the hazard allowOnly exists for: to
// nats-server an empty allow list means no restriction, so a user given
// nothing to publish must still be refused every publish.
func TestUsersEmptyAllowDenies(t *testing.T) {
	t.Parallel()
	s, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: []natsembed.User{
		{Name: "mute", Password: "pw", Subscribe: []string{"_INBOX.>"}},
	}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	violations := make(chan error, 1)
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("mute", "pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("anything", nil); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("got %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("a user with an empty publish list published")
	}
	if _, err := nats.Connect(s.ClientURL(), nats.NoReconnect()); err == nil {
		t.Error("anonymous connect succeeded on a server with users")
	}
}

// TestSetUsers: users added to a running server may log in at once with
// their permissions, users that stay keep their connections, and a user
// removed is refused and disconnected.
func TestSetUsers(t *testing.T) {
	t.Parallel()
	hub := natsembed.User{Name: "hub", Password: "hub-pw", Publish: []string{">"}, Subscribe: []string{">"}}
	o := natsembed.Options{StoreDir: t.TempDir(), Users: []natsembed.User{hub}}
	s, err := natsembed.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	connect := func(user, pw string) (*nats.Conn, error) {
		return nats.Connect(s.ClientURL(), nats.UserInfo(user, pw), nats.MaxReconnects(0))
	}
	hubConn, err := connect("hub", "hub-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer hubConn.Close()
	if _, err := connect("sub", "sub-pw"); err == nil {
		t.Fatal("a user not yet added logged in")
	}

	sub := natsembed.User{Name: "sub", Password: "sub-pw", Subscribe: []string{"billing.>"}}
	if err := natsembed.SetUsers(s, o, []natsembed.User{hub, sub}); err != nil {
		t.Fatal(err)
	}
	subConn, err := connect("sub", "sub-pw")
	if err != nil {
		t.Fatalf("the added user: %v", err)
	}
	refused := make(chan error, 1)
	subConn.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err })
	if err := subConn.Publish("billing.x", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("publish refused with %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the added user published outside its permissions unrefused")
	}
	if !hubConn.IsConnected() {
		t.Error("the hub's connection was dropped by the reload")
	}

	dropped := make(chan struct{})
	subConn.SetClosedHandler(func(*nats.Conn) { close(dropped) })
	if err := natsembed.SetUsers(s, o, []natsembed.User{hub}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dropped:
	case <-time.After(5 * time.Second):
		t.Error("the removed user's connection stayed open")
	}
	if _, err := connect("sub", "sub-pw"); err == nil {
		t.Error("the removed user logged in")
	}
	if err := natsembed.SetUsers(s, natsembed.Options{StoreDir: o.StoreDir}, nil); err == nil {
		t.Error("SetUsers on a server started for anyone: no error")
	}
}
