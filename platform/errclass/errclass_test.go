package errclass_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/errclass"
)

func TestOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want errclass.Class
	}{
		{"plain", base, errclass.ClassUnknown},
		{"marked transient, wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errclass.Transient(base))), errclass.ClassTransient},
		{"marked auth", errclass.Auth(base), errclass.ClassAuth},
		{"marked permanent", errclass.Permanent(base), errclass.ClassPermanent},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), errclass.ClassTransient},
		{"nats timeout", nats.ErrTimeout, errclass.ClassTransient},
		{"nats no responders", nats.ErrNoResponders, errclass.ClassTransient},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, errclass.ClassTransient},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, errclass.ClassTransient},
		{"unique violation", &pgconn.PgError{Code: "23505"}, errclass.ClassPermanent},
		{"bad password", &pgconn.PgError{Code: "28P01"}, errclass.ClassAuth},
		{"syntax error", &pgconn.PgError{Code: "42601"}, errclass.ClassUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errclass.Of(tt.err); got != tt.want {
				t.Errorf("Of(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestFromHTTP(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "7")
	date := http.Header{}
	date.Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
	tests := []struct {
		status int
		header http.Header
		want   errclass.Class
		hint   time.Duration
	}{
		{429, h, errclass.ClassTransient, 7 * time.Second},
		{503, nil, errclass.ClassTransient, 0},
		{500, date, errclass.ClassTransient, 89 * time.Second},
		{401, nil, errclass.ClassAuth, 0},
		{403, nil, errclass.ClassAuth, 0},
		{400, nil, errclass.ClassPermanent, 0},
		{422, nil, errclass.ClassPermanent, 0},
		{408, nil, errclass.ClassTransient, 0},
	}
	for _, tt := range tests {
		err := errclass.FromHTTP(tt.status, tt.header, nil)
		if got := errclass.Of(err); got != tt.want {
			t.Errorf("%d: class %v, want %v", tt.status, got, tt.want)
		}
		if got := errclass.RetryHint(err); got < tt.hint || got > tt.hint+2*time.Second {
			t.Errorf("%d: hint %v, want about %v", tt.status, got, tt.hint)
		}
	}
}
