// Package natsembed runs a NATS server with JetStream inside the process, for
// `switchyard dev` and for tests. Production runs a real cluster instead.
package natsembed

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures the embedded server.
type Options struct {
	Host     string // default 127.0.0.1
	Port     int    // 0 or -1 = a random free port
	StoreDir string // JetStream file storage; required

	// Users, when set, are the only clients the server accepts: each with
	// its password and allow lists. Empty: anyone may connect and do
	// anything (tests that do not care about identities).
	Users []User
}

// User is one NATS identity: a user name, its password and what it may
// publish and subscribe to (nil lists: nothing).
type User struct {
	Name      string
	Password  string
	Publish   []string
	Subscribe []string
}

// allowOnly is an allow list the server enforces as one: an empty Allow
// means "no restriction" to nats-server, so nothing allowed is a deny of >.
func allowOnly(allow []string) *server.SubjectPermission {
	if len(allow) == 0 {
		return &server.SubjectPermission{Deny: []string{">"}}
	}
	return &server.SubjectPermission{Allow: append([]string{}, allow...)}
}

func serverUsers(us []User) []*server.User {
	var out []*server.User
	for _, u := range us {
		out = append(out, &server.User{
			Username: u.Name,
			Password: u.Password,
			Permissions: &server.Permissions{
				Publish:   allowOnly(u.Publish),
				Subscribe: allowOnly(u.Subscribe),
			},
		})
	}
	return out
}

// Start runs a server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("natsembed: StoreDir is required")
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// The server reports a taken port only by never becoming ready;
		// say so at once instead.
		l, err := net.Listen("tcp", net.JoinHostPort(o.host(), strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("natsembed: %w", err)
		}
		_ = l.Close()
	}
	s, err := server.NewServer(o.server(port))
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready within 10s", o.host(), port)
	}
	return s, nil
}

// SetUsers makes users the only clients of s, a server Start ran with o
// (and Users set: a server that accepts anyone stays so), without a
// restart: the server reloads its authorization, keeps the connections of
// users that remain with the same password and permissions, and closes
// those of users removed.
func SetUsers(s *server.Server, o Options, users []User) error {
	if len(o.Users) == 0 {
		return fmt.Errorf("natsembed: the server was started without users; it accepts anyone")
	}
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("natsembed: the server is not listening")
	}
	o.Users = users
	if err := s.ReloadOptions(o.server(addr.Port)); err != nil {
		return fmt.Errorf("natsembed: reload users: %w", err)
	}
	return nil
}

func (o Options) host() string {
	if o.Host == "" {
		return "127.0.0.1"
	}
	return o.Host
}

// server is the configuration Start runs o with, listening on port.
func (o Options) server(port int) *server.Options {
	return &server.Options{
		Host:      o.host(),
		Port:      port,
		JetStream: true,
		StoreDir:  o.StoreDir,
		NoLog:     true,
		NoSigs:    true,
		// Bounded so a runaway test cannot fill the machine's memory or disk.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  8 << 30,
		Users:              serverUsers(o.Users),
	}
}
