package stripesig_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/stripesig"
)

type vectors struct {
	Secret       string `json:"secret"`
	RolledSecret string `json:"rolled_secret"`
	Valid        []struct {
		File   string `json:"file"`
		T      int64  `json:"t"`
		Header string `json:"header"`
	} `json:"valid"`
	Cases []struct {
		Case       string `json:"case"`
		File       string `json:"file"`
		Header     string `json:"header"`
		VerifyWith string `json:"verify_with"`
		Expect     string `json:"expect"`
		Mutate     *struct {
			Replace string `json:"replace"`
			With    string `json:"with"`
		} `json:"mutate_body"`
	} `json:"negative_and_edge_cases"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b := testkit.StripeFile(t, "events/signatures.json")
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// at returns a clock frozen at the vector's timestamp: the 2023 vectors are
// checked for their signature, not their age.
func at(ts int64) func() time.Time { return func() time.Time { return time.Unix(ts, 0) } }

func TestVectorsValid(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Valid {
		t.Run(c.File, func(t *testing.T) {
			body := testkit.StripeFile(t, c.File)
			ver, err := stripesig.NewVerifier([]string{v.Secret}, 0, at(c.T))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ver.Verify(body, c.Header); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := stripesig.Sign(body, time.Unix(c.T, 0), v.Secret); got != c.Header {
				t.Errorf("Sign = %q, want %q", got, c.Header)
			}
		})
	}
}

func TestVectorsEdgeCases(t *testing.T) {
	v := loadVectors(t)
	want := map[string]error{
		"ok":                  nil,
		"ErrNoValidSignature": stripesig.ErrNoValidSignature,
		"ErrNotSigned":        stripesig.ErrNotSigned,
		"ErrInvalidHeader":    stripesig.ErrInvalidHeader,
	}
	for _, c := range v.Cases {
		if strings.HasPrefix(c.Case, "tolerance") || strings.HasPrefix(c.Case, "API version") {
			continue // covered by TestTolerance and the gateway's version tests
		}
		t.Run(c.Case, func(t *testing.T) {
			var body []byte
			if c.File != "" {
				body = testkit.StripeFile(t, c.File)
			}
			if c.Mutate != nil {
				body = []byte(strings.Replace(string(body), c.Mutate.Replace, c.Mutate.With, 1))
			}
			secret := c.VerifyWith
			if secret == "" {
				secret = v.Secret
			}
			ver, _ := stripesig.NewVerifier([]string{secret}, 0, at(1698249602))
			verdict := strings.Fields(c.Expect)[0]
			wantErr, ok := want[verdict]
			if !ok {
				t.Fatalf("unknown verdict %q", c.Expect)
			}
			_, err := ver.Verify(body, c.Header)
			if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, wantErr)
			}
		})
	}
}

func TestRotationAcceptsEitherSecret(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	now := time.Now()
	ver, err := stripesig.NewVerifier([]string{"whsec_old", "whsec_new"}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"whsec_old", "whsec_new"} {
		if _, err := ver.Verify(body, stripesig.Sign(body, now, s)); err != nil {
			t.Errorf("signed with %s: %v", s, err)
		}
	}
	if _, err := ver.Verify(body, stripesig.Sign(body, now, "whsec_other")); !errors.Is(err, stripesig.ErrNoValidSignature) {
		t.Errorf("signed with an unknown secret: %v, want ErrNoValidSignature", err)
	}
}

func TestTolerance(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	ver, _ := stripesig.NewVerifier([]string{"whsec_x"}, 0, func() time.Time { return now })
	tests := []struct {
		name    string
		signed  time.Time
		header  string
		wantErr error
	}{
		{name: "now", signed: now},
		{name: "299s old", signed: now.Add(-299 * time.Second)},
		{name: "301s old", signed: now.Add(-301 * time.Second), wantErr: stripesig.ErrTooOld},
		{name: "299s ahead", signed: now.Add(299 * time.Second)},
		{name: "301s ahead", signed: now.Add(301 * time.Second), wantErr: stripesig.ErrTooNew},
		{name: "stale and wrong secret reports age first", header: "t=1,v1=" + strings.Repeat("ab", 32), wantErr: stripesig.ErrTooOld},
		{name: "v1 without t", header: "v1=" + strings.Repeat("ab", 32), wantErr: stripesig.ErrTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == "" {
				h = stripesig.Sign(body, tt.signed, "whsec_x")
			}
			if _, err := ver.Verify(body, h); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// FuzzVerifyMatchesStripeGo checks that our verifier and stripe-go v76 agree
// on every header and body, apart from the future-timestamp rule we add.
func FuzzVerifyMatchesStripeGo(f *testing.F) {
	const secret = "whsec_test_secret"
	now := time.Unix(1698249700, 0)
	body := []byte(`{"id":"evt_1","object":"event"}`)
	f.Add(body, stripesig.Sign(body, now, secret))
	f.Add(body, "t=1698249602,v1=bad,v1="+strings.Repeat("0", 64))
	f.Add(body, "v1,t=1")
	f.Add(body, "t=,v1=00")
	f.Add(body, "t=1698249602, v1=00")
	f.Add(body, "t=1,t=1698249700,v1=00==")
	f.Add([]byte{}, "")
	ver, _ := stripesig.NewVerifier([]string{secret}, 0, func() time.Time { return now })
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		_, ours := ver.Verify(body, header)
		if errors.Is(ours, stripesig.ErrTooNew) {
			return // stripe-go accepts future timestamps; we do not
		}
		theirs := webhook.ValidatePayloadWithTolerance(body, header, secret, time.Since(now)+stripesig.DefaultTolerance+500*time.Millisecond)
		if (ours == nil) != (theirs == nil) {
			t.Fatalf("header %q: ours=%v stripe-go=%v", header, ours, theirs)
		}
		pairs := map[error]error{
			stripesig.ErrNotSigned:        webhook.ErrNotSigned,
			stripesig.ErrInvalidHeader:    webhook.ErrInvalidHeader,
			stripesig.ErrNoValidSignature: webhook.ErrNoValidSignature,
			stripesig.ErrTooOld:           webhook.ErrTooOld,
		}
		if ours != nil && !errors.Is(theirs, pairs[ours]) {
			t.Fatalf("header %q: ours=%v stripe-go=%v", header, ours, theirs)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add("t=1698249602,v1=67ae8efd2fa0e59b8acec9598efc71c80d9170900eed8b1b1e145738c8d00a3b")
	f.Add("t=1,v0=00,v1=zz")
	f.Fuzz(func(t *testing.T, h string) {
		got, err := stripesig.ParseHeader(h)
		if err == nil && len(got.V1) == 0 {
			t.Fatalf("%q parsed with no v1 signature", h)
		}
	})
}
