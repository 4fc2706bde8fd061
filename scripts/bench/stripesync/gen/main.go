// Command stripesyncgen posts unique, signed Stripe webhooks over HTTP with K
// concurrent clients as fast as the server takes them, and prints one line:
//
//	events=<n> seconds=<s> rate=<events/s> non2xx=<n> p50_ms=<x> p99_ms=<y>
//
// Each customer gets three events built from the real fixtures
// (customer.created with a unique email, invoice.payment_failed, invoice.paid),
// with every Stripe id in them suffixed per customer, so that customers share
// nothing and every event id is unique. Bodies are built before the clock
// starts; each request is signed when sent (Stripe-Signature: t=…,v1=…).
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The events of one customer, in the order they are queued.
var fixtureFiles = []string{"customer.created.json", "invoice.payment_failed.json", "invoice.paid.json"}

// Every Stripe id in those fixtures: events, customer, invoice, invoice line
// and item, charges, payment intent, price, product, requests (and
// subscriptions, should a fixture gain one). It also matches the invoice id
// inside the lines URL.
var stripeID = regexp.MustCompile(`\b(?:evt|cus|in|il|ii|ch|pi|price|prod|sub|req)_[A-Za-z0-9]+`)

func main() {
	url := flag.String("url", "http://127.0.0.1:18090/webhook", "webhook endpoint")
	secret := flag.String("secret", "", "webhook signing secret (required)")
	dir := flag.String("fixtures", "", "directory of the Stripe event fixtures (required)")
	customers := flag.Int("customers", 2000, "customers; three events each")
	clients := flag.Int("clients", 32, "concurrent HTTP clients")
	tag := flag.String("tag", "c", "id suffix prefix; use a different one per run against the same database")
	flag.Parse()
	if *secret == "" || *dir == "" || *customers < 1 || *clients < 1 {
		flag.Usage()
		os.Exit(2)
	}

	bodies, err := buildBodies(*dir, *customers, *tag)
	if err != nil {
		log.Fatal(err)
	}
	r := post(*url, []byte(*secret), bodies, *clients)
	fmt.Printf("events=%d seconds=%.3f rate=%.1f non2xx=%d p50_ms=%.1f p99_ms=%.1f\n",
		len(bodies), r.wall.Seconds(), float64(len(bodies))/r.wall.Seconds(), r.failed,
		ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99)))
}

func buildBodies(dir string, customers int, tag string) ([][]byte, error) {
	fixtures := make([]string, len(fixtureFiles))
	for i, name := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		fixtures[i] = string(b)
	}
	const noEmail = `"email": null`
	if strings.Count(fixtures[0], noEmail) != 1 {
		return nil, fmt.Errorf("%s: expected one %s to give the customer an email", fixtureFiles[0], noEmail)
	}

	bodies := make([][]byte, 0, customers*len(fixtures))
	seen := make(map[string]bool, cap(bodies))
	for c := range customers {
		suffix := fmt.Sprintf("%s%06d", tag, c)
		for i, f := range fixtures {
			body := stripeID.ReplaceAllString(f, "${0}"+suffix)
			if i == 0 {
				body = strings.Replace(body, noEmail, `"email": "bench+`+suffix+`@example.com"`, 1)
			}
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(body), &ev); err != nil {
				return nil, fmt.Errorf("%s: %w", fixtureFiles[i], err)
			}
			if !strings.HasSuffix(ev.ID, suffix) || seen[ev.ID] {
				return nil, fmt.Errorf("%s: event id %q is not unique", fixtureFiles[i], ev.ID)
			}
			seen[ev.ID] = true
			bodies = append(bodies, []byte(body))
		}
	}
	return bodies, nil
}

type result struct {
	wall      time.Duration
	failed    int64
	latencies []time.Duration
}

func post(url string, secret []byte, bodies [][]byte, clients int) result {
	client := &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: clients,
			MaxConnsPerHost:     clients,
			DisableCompression:  true,
		},
	}
	latencies := make([]time.Duration, len(bodies))
	var next, failed atomic.Int64
	var logged atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				t0 := time.Now()
				status, err := send(client, url, secret, bodies[i])
				latencies[i] = time.Since(t0)
				if err != nil || status/100 != 2 {
					failed.Add(1)
					if logged.Add(1) <= 5 {
						log.Printf("event %d: status %d, error %v", i, status, err)
					}
				}
			}
		})
	}
	wg.Wait()
	r := result{wall: time.Since(start), failed: failed.Load(), latencies: latencies}
	slices.Sort(r.latencies)
	return r
}

func send(client *http.Client, url string, secret, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sign(secret, body, time.Now()))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// sign returns the Stripe-Signature header: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
func sign(secret, body []byte, now time.Time) string {
	t := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
