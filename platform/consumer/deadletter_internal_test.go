package consumer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestEncodeWithin: an envelope is cut only when it would not fit, and then
// to fit — the data first, the reason too when even no data does not fit;
// only headers alone over max_payload are an error.
func TestEncodeWithin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		data       int
		reason     int
		maxPayload int64
		wantCut    bool
		wantErr    bool
	}{
		{name: "fits", data: 1000, reason: 20, maxPayload: 64 << 10},
		{name: "no limit known", data: 1 << 20, reason: 20, maxPayload: 0},
		{name: "data cut", data: 64 << 10, reason: 20, maxPayload: 64 << 10, wantCut: true},
		{name: "reason cut too", data: 10 << 10, reason: 200 << 10, maxPayload: 64 << 10, wantCut: true},
		{name: "headers alone too big", data: 10, reason: 20, maxPayload: 100, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			orig := bytes.Repeat([]byte("d"), tt.data)
			d := &DeadLetter{OriginalSubject: "billing.x", OriginalData: orig, OriginalHeaders: nats.Header{"Nats-Msg-Id": {"m1"}},
				OriginalStream: "BILLING", OriginalSeq: 7, Consumer: "c", Reason: strings.Repeat("r", tt.reason)}
			h := nats.Header{HeaderOriginalSHA256: {strings.Repeat("0", 64)}}
			data, err := encodeWithin(d, h, tt.maxPayload)
			if tt.wantErr {
				if err == nil {
					t.Fatal("encodeWithin = nil error, want one")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.maxPayload > 0 && int64(headerSize(h)+len(data)) > tt.maxPayload {
				t.Errorf("envelope of %d bytes with headers, over %d", headerSize(h)+len(data), tt.maxPayload)
			}
			if d.Truncated != tt.wantCut || (h.Get(HeaderTruncated) != "") != tt.wantCut {
				t.Errorf("truncated = %v, header %q; want %v", d.Truncated, h.Get(HeaderTruncated), tt.wantCut)
			}
			got, err := DecodeDeadLetter(data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(orig, got.OriginalData) || (len(got.OriginalData) < len(orig)) != tt.wantCut {
				t.Errorf("kept %d of %d bytes", len(got.OriginalData), len(orig))
			}
			if tt.wantCut && (!strings.Contains(got.Reason, "BILLING #7") || !strings.HasPrefix(got.Reason, "rrr")) {
				t.Errorf("reason %.80q…, want the error first and where the whole message is", got.Reason)
			}
		})
	}
}
