// Package errclass is the hub's small error vocabulary for deciding what to
// do with a failure: retry it, stop and alert, or give up on the message.
//
//	ClassTransient  retry with backoff (429, 5xx, network, timeouts, lost DB connection)
//	ClassAuth       credentials are wrong (401/403): retrying cannot help; dead-letter and alert
//	ClassPermanent  the input cannot succeed (400/422 validation, bad data): dead-letter
//	ClassUnknown    anything unclassified: retried like Transient, dead-lettered as Unknown
//
// Errors are classified where they cross a boundary (an HTTP answer, a
// SQLSTATE, a NATS error) by wrapping them with Transient, Auth or Permanent;
// Of reads the class back through any amount of %w wrapping and recognises
// the common library errors itself.
package errclass

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
)

// Class is an error's class.
type Class int

// The classes, in the order of their numeric values (stable: they are stored).
const (
	ClassUnknown Class = iota
	ClassTransient
	ClassAuth
	ClassPermanent
)

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassAuth:
		return "auth"
	case ClassPermanent:
		return "permanent"
	default:
		return "unknown"
	}
}

// Retryable reports whether an error of this class may succeed on retry.
func (c Class) Retryable() bool { return c == ClassTransient || c == ClassUnknown }

// Error carries a class and an optional retry hint (from Retry-After).
type Error struct {
	Class      Class
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func wrap(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Err: err}
}

// Transient marks err as worth retrying.
func Transient(err error) error { return wrap(ClassTransient, err) }

// Auth marks err as a credentials failure.
func Auth(err error) error { return wrap(ClassAuth, err) }

// Permanent marks err as one that no retry can fix.
func Permanent(err error) error { return wrap(ClassPermanent, err) }

// RetryAfter marks err transient with the wait the other side asked for.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &Error{Class: ClassTransient, RetryAfter: d, Err: err}
}

// Of returns err's class: an explicit mark wins; then known library errors;
// anything else is Unknown.
func Of(err error) Class {
	if err == nil {
		return ClassUnknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return ofSQLState(pg.Code)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return ClassTransient
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ClassTransient
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting):
		return ClassTransient
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return ClassTransient
	}
	return ClassUnknown
}

// RetryHint returns the wait an error asked for, or 0.
func RetryHint(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ofSQLState classifies PostgreSQL errors by SQLSTATE class.
func ofSQLState(code string) Class {
	switch {
	case code == "40001", code == "40P01": // serialization failure, deadlock
		return ClassTransient
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "57"), strings.HasPrefix(code, "58"):
		return ClassTransient // connection, resources, operator intervention, system errors
	case code == "28000", code == "28P01", code == "42501":
		return ClassAuth // invalid authorization, password, insufficient privilege
	case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "23"):
		return ClassPermanent // data exception, integrity constraint violation
	}
	return ClassUnknown
}

// FromHTTP classifies a vendor's HTTP answer. header may be nil; a
// Retry-After in seconds or as an HTTP date becomes the retry hint.
func FromHTTP(status int, header http.Header, err error) error {
	if err == nil {
		err = fmt.Errorf("http %d", status)
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return RetryAfter(err, retryAfter(header, time.Now()))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Auth(err)
	case status == http.StatusRequestTimeout:
		return Transient(err)
	case status >= 400:
		return Permanent(err)
	}
	return err
}

func retryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Proto returns the class as the wire contract's enum (common.v1.ErrorClass).
func (c Class) Proto() commonv1.ErrorClass {
	switch c {
	case ClassTransient:
		return commonv1.ErrorClass_ERROR_CLASS_TRANSIENT
	case ClassAuth:
		return commonv1.ErrorClass_ERROR_CLASS_AUTH
	case ClassPermanent:
		return commonv1.ErrorClass_ERROR_CLASS_PERMANENT
	}
	return commonv1.ErrorClass_ERROR_CLASS_UNKNOWN
}

// FromProto is the inverse of Proto; UNSPECIFIED reads as ClassUnknown.
func FromProto(p commonv1.ErrorClass) Class {
	switch p {
	case commonv1.ErrorClass_ERROR_CLASS_TRANSIENT:
		return ClassTransient
	case commonv1.ErrorClass_ERROR_CLASS_AUTH:
		return ClassAuth
	case commonv1.ErrorClass_ERROR_CLASS_PERMANENT:
		return ClassPermanent
	}
	return ClassUnknown
}
