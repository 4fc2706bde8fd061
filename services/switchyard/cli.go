package main

// What every command shares, in production builds too (dev.go is left out of
// those by the nodev tag): usage errors, how a command finds the dev hub's
// files and logs in to NATS, and small address helpers.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
)

var errUsage = errors.New("usage")

// secretFile is where `dev` keeps a generated signing secret, in its data
// folder, and where `send` finds it.
const secretFile = "webhook-secret"

// natsUsersDir is the folder, in the data folder, where `dev` keeps the
// password of each NATS identity of the embedded server, one file per
// identity named after it (a NATS_PASSWORD_FILE), so restarts and the CLI
// (operator) find them.
const natsUsersDir = "nats-users"

// cliNATS is how a CLI command logs in to NATS: the credentials in the
// environment (NATS_USER with NATS_PASSWORD[_FILE], or NATS_CREDS), else
// the operator identity the dev hub saved in dataDir, else none.
func cliNATS(getenv func(string) string, dataDir string) ([]nats.Option, error) {
	if getenv("NATS_USER") != "" || getenv("NATS_CREDS") != "" {
		r := config.NewReader(getenv)
		o := natsbus.OptionsFromEnv(r, "switchyard-cli")
		if err := r.Err(); err != nil {
			return nil, err
		}
		return o.AuthOptions(), nil
	}
	path := filepath.Join(dataDir, natsUsersDir, natsbus.IdentityOperator)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no dev hub here: connect without credentials
	}
	if err != nil {
		return nil, fmt.Errorf("the dev hub's operator NATS identity: %w", err)
	}
	return []nats.Option{nats.UserInfo(natsbus.IdentityOperator, strings.TrimSpace(string(b))),
		nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityOperator))}, nil
}

// randomHex is n random bytes in hex; crypto/rand never fails on
// supported platforms.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func waitReady(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	c := http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", url, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// dialAddr turns a listen address into one to connect to: ":8080" and
// "0.0.0.0:8080" are reached on 127.0.0.1.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
