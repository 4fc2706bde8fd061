package gateway

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// HeaderAllowance is the room the body limit leaves, below the NATS server's
// max_payload, for the headers the gateway stores with each event (message
// id, type, API version, livemode, Stripe's signature header, creation and
// receipt times, request id, version status, trace context: about 600 bytes
// for a Stripe delivery). NATS counts headers and data together against
// max_payload.
const HeaderAllowance = 4 << 10

// MinBodyLimit is the smallest body limit the gateway starts with: a NATS
// server whose max_payload leaves less than this for a webhook body would
// refuse ordinary Stripe events, so the gateway refuses to start instead.
const MinBodyLimit = 256 << 10

// BodyLimit is the largest webhook body the gateway accepts on a NATS
// server whose max_payload is maxPayload: MaxBodyBytes, or less when the
// server could not store that with the gateway's headers. A body the
// gateway could not store is answered 413 at once (and counted), never
// 503 on every one of Stripe's retries.
func BodyLimit(maxPayload int64) (int, error) {
	limit := min(int64(MaxBodyBytes), maxPayload-HeaderAllowance)
	if limit < MinBodyLimit {
		return 0, fmt.Errorf("the NATS server's max_payload is %d bytes: after %d bytes for the gateway's headers that leaves %d for a webhook body, below the gateway's minimum of %d; raise max_payload on the server to at least %d",
			maxPayload, HeaderAllowance, max(limit, 0), MinBodyLimit, MinBodyLimit+HeaderAllowance)
	}
	return int(limit), nil
}

// errTooLarge means a message, headers included, exceeds the server's
// max_payload: storing it can never succeed, so it is not a 503.
var errTooLarge = errors.New("message exceeds the NATS server's max_payload")

// messageSize is what NATS counts against max_payload for msg: its data
// and its headers as sent on the wire ("NATS/1.0\r\n", "Key: value\r\n"
// per value, a closing "\r\n").
func messageSize(msg *nats.Msg) int {
	if len(msg.Header) == 0 {
		return len(msg.Data)
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range msg.Header {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n + len(msg.Data)
}
