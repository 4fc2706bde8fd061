package ops

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name, peer string
		xff        []string
		proxies    []netip.Prefix
		want       string
	}{
		{"no proxies configured: the header is ignored", "192.0.2.1:5000", []string{"203.0.113.7"}, nil, "192.0.2.1"},
		{"an untrusted peer cannot pick its address", "192.0.2.1:5000", []string{"203.0.113.7"}, proxies, "192.0.2.1"},
		{"a trusted proxy names the client", "10.1.2.3:5000", []string{"203.0.113.7"}, proxies, "203.0.113.7"},
		{"the rightmost untrusted hop counts", "10.1.2.3:5000", []string{"198.51.100.9, 203.0.113.7"}, proxies, "203.0.113.7"},
		{"chained trusted proxies are skipped", "10.1.2.3:5000", []string{"203.0.113.7", "10.9.9.9"}, proxies, "203.0.113.7"},
		{"a proxy without the header is the client", "10.1.2.3:5000", nil, proxies, "10.1.2.3"},
		{"a malformed hop stops the walk", "10.1.2.3:5000", []string{"203.0.113.7, not-an-ip"}, proxies, "10.1.2.3"},
		{"IPv6 loopback proxy", "[::1]:5000", []string{"2001:db8::1"}, proxies, "2001:db8::1"},
		{"IPv4-mapped addresses are unmapped", "10.1.2.3:5000", []string{"::ffff:203.0.113.7"}, proxies, "203.0.113.7"},
		{"a hop with a port", "10.1.2.3:5000", []string{"203.0.113.7:61000"}, proxies, "203.0.113.7"},
		{"an IPv6 hop with a port", "10.1.2.3:5000", []string{"[2001:db8::1]:61000"}, proxies, "2001:db8::1"},
		{"an IPv6 zone is dropped", "10.1.2.3:5000", []string{"fe80::1%eth0"}, proxies, "fe80::1"},
		{"empty entries are skipped over as malformed", "10.1.2.3:5000", []string{"203.0.113.7, "}, proxies, "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			c := &Console{proxies: tt.proxies}
			if got := c.clientAddr(r); got != tt.want {
				t.Errorf("clientAddr = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"127.0.0.1": "127.0.0.1/32", "10.0.0.0/8": "10.0.0.0/8", "10.1.2.3/8": "10.0.0.0/8", "::1": "::1/128"} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "localhost", "10.0.0.0/33"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}
