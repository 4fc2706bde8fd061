package config_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/config"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want, secret string
	}{
		{in: "nats://127.0.0.1:4222", want: "nats://127.0.0.1:4222"},
		{in: "nats://alice:s3cret@nats:4222", want: "nats://alice:xxx@nats:4222", secret: "s3cret"},
		{in: "nats://tok3n@nats:4222", want: "nats://xxx@nats:4222", secret: "tok3n"},
		{in: "nats://a:p1@h1:4222, nats://b:p2@h2:4222", want: "nats://a:xxx@h1:4222,nats://b:xxx@h2:4222", secret: "p1"},
		{in: "postgres://app:pw@db:5432/x?sslmode=disable", want: "postgres://app:xxx@db:5432/x?sslmode=disable", secret: "pw"},
		{in: "postgres://postgres@127.0.0.1:5432/postgres", want: "postgres://postgres@127.0.0.1:5432/postgres"},
		{in: "postgres://db/x?user=app&password=hunter2", want: "postgres://db/x?password=xxx&user=app", secret: "hunter2"},
		{in: "nats://u:pa/ss#w@host:4222", want: "nats://***@host:4222", secret: "pa/ss"},
	}
	for _, tt := range tests {
		got := config.RedactURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.secret != "" && strings.Contains(got, tt.secret) {
			t.Errorf("RedactURL(%q) leaks %q", tt.in, tt.secret)
		}
	}
}
