package money_test

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/switchyard/switchyard/platform/money"
)

func TestExponent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		currency string
		want     int
	}{
		{"jpy", 0}, {"JPY", 0}, {"krw", 0}, {"clp", 0}, {"vnd", 0}, {"ugx", 0}, {"xpf", 0},
		{"usd", 2}, {"eur", 2}, {"gbp", 2},
		{"isk", 2}, {"huf", 2}, {"twd", 2}, // two-decimal in Stripe's API, whatever ISO 4217 or payouts say
		{"bhd", 3}, {"jod", 3}, {"kwd", 3}, {"KWD", 3}, {"omr", 3}, {"tnd", 3},
		{"xyz", 2}, {"", 2}, // unknown: two decimals
	}
	for _, tt := range tests {
		if got := money.Exponent(tt.currency); got != tt.want {
			t.Errorf("Exponent(%q) = %d, want %d", tt.currency, got, tt.want)
		}
	}
}

func TestDecimalAndFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		amount      int64
		currency    string
		wantDecimal string
		wantFormat  string
	}{
		{"jpy", 1000, "jpy", "1000", "1,000 JPY"},
		{"jpy upper-case code", 1000, "JPY", "1000", "1,000 JPY"},
		{"jpy one yen", 1, "jpy", "1", "1 JPY"},
		{"jpy negative", -1500, "jpy", "-1500", "-1,500 JPY"},
		{"krw", 50000, "krw", "50000", "50,000 KRW"},
		{"usd", 1250, "usd", "12.50", "12.50 USD"},
		{"usd one cent", 1, "usd", "0.01", "0.01 USD"},
		{"usd under a unit, negative", -5, "usd", "-0.05", "-0.05 USD"},
		{"usd negative", -123456, "usd", "-1234.56", "-1,234.56 USD"},
		{"usd million", 100000000, "usd", "1000000.00", "1,000,000.00 USD"},
		{"eur", 4900, "eur", "49.00", "49.00 EUR"},
		{"eur three-digit whole", 99999, "eur", "999.99", "999.99 EUR"},
		{"bhd", 1000, "bhd", "1.000", "1.000 BHD"},
		{"kwd", 12500, "kwd", "12.500", "12.500 KWD"},
		{"kwd fils", 7, "kwd", "0.007", "0.007 KWD"},
		{"kwd negative", -123456789, "kwd", "-123456.789", "-123,456.789 KWD"},
		{"zero usd", 0, "usd", "0.00", "0.00 USD"},
		{"zero jpy", 0, "jpy", "0", "0 JPY"},
		{"zero kwd", 0, "kwd", "0.000", "0.000 KWD"},
		{"unknown currency", 1234, "xyz", "12.34", "12.34 XYZ"},
		{"no currency", 1234, "", "12.34", "12.34"},
		{"max int64 usd", math.MaxInt64, "usd", "92233720368547758.07", "92,233,720,368,547,758.07 USD"},
		{"min int64 usd", math.MinInt64, "usd", "-92233720368547758.08", "-92,233,720,368,547,758.08 USD"},
		{"max int64 jpy", math.MaxInt64, "jpy", "9223372036854775807", "9,223,372,036,854,775,807 JPY"},
		{"min int64 kwd", math.MinInt64, "kwd", "-9223372036854775.808", "-9,223,372,036,854,775.808 KWD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, want := money.Decimal(tt.amount, tt.currency), tt.wantDecimal; got != want {
				t.Errorf("Decimal(%d, %q) = %q, want %q", tt.amount, tt.currency, got, want)
			}
			if got, want := money.Format(tt.amount, tt.currency), tt.wantFormat; got != want {
				t.Errorf("Format(%d, %q) = %q, want %q", tt.amount, tt.currency, got, want)
			}
		})
	}
}

// TestDecimalIsExact: Decimal(a, c) is exactly a / 10^Exponent(c) with
// Exponent(c) decimals, as math/big computes it, for edge values and random
// ones of every size.
func TestDecimalIsExact(t *testing.T) {
	t.Parallel()
	amounts := []int64{0, 1, -1, 9, 10, 99, 100, 101, 999, 1000, -1000, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a := r.Int64() >> r.UintN(63) // every magnitude
		if r.IntN(2) == 0 {
			a = -a
		}
		amounts = append(amounts, a)
	}
	for _, c := range []string{"jpy", "usd", "kwd"} {
		e := money.Exponent(c)
		scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil)
		for _, a := range amounts {
			want := new(big.Rat).SetFrac(big.NewInt(a), scale).FloatString(e)
			if got := money.Decimal(a, c); got != want {
				t.Fatalf("Decimal(%d, %q) = %q, want %q", a, c, got, want)
			}
		}
	}
}

func ExampleFormat() {
	fmt.Println(money.Format(100000, "jpy"))
	fmt.Println(money.Format(1250, "usd"))
	fmt.Println(money.Format(-123456789, "kwd"))
	// Output:
	// 100,000 JPY
	// 12.50 USD
	// -123,456.789 KWD
}

func ExampleDecimal() {
	fmt.Println(money.Decimal(1000, "jpy"))
	fmt.Println(money.Decimal(4900, "usd"))
	fmt.Println(money.Decimal(12500, "kwd"))
	// Output:
	// 1000
	// 49.00
	// 12.500
}
