// Package money turns Stripe amounts into decimal strings, for machines and
// for people.
//
// Stripe states every amount as an integer in the currency's minor unit,
// and the minor unit is not always a hundredth: for Stripe's zero-decimal
// currencies (JPY, KRW, …) it is the whole unit, so 1000 in JPY is ¥1,000,
// and for its three-decimal currencies (BHD, JOD, KWD, OMR, TND) it is a
// thousandth, so 1000 in KWD is 1.000 KWD. Dividing by 100 everywhere shows
// ¥1,000 as 10.00. Every conversion of a Stripe amount belongs here.
//
// The exponents are Stripe's (https://docs.stripe.com/currencies), not ISO
// 4217's: where they differ, Stripe's API is what the amounts follow. ISK,
// HUF and TWD stay two-decimal in Stripe's API even where only whole units
// may be charged (ISK 100 is 1 króna), and UGX is zero-decimal. A currency
// Stripe does not list as special, or one this package does not know, has
// two decimals. Currency codes are matched case-insensitively (Stripe sends
// them lower-case).
//
// The functions are pure and safe for concurrent use; they never round:
// the result states the amount exactly, for any int64.
package money

import (
	"strconv"
	"strings"
)

// exponents are the currencies whose minor unit is not a hundredth, by
// Stripe's lower-case code.
var exponents = map[string]int{
	// Zero-decimal: the amount is in whole units.
	"bif": 0, "clp": 0, "djf": 0, "gnf": 0, "jpy": 0, "kmf": 0, "krw": 0, "mga": 0,
	"pyg": 0, "rwf": 0, "ugx": 0, "vnd": 0, "vuv": 0, "xaf": 0, "xof": 0, "xpf": 0,
	// Three-decimal: the amount is in thousandths.
	"bhd": 3, "jod": 3, "kwd": 3, "omr": 3, "tnd": 3,
}

// Exponent returns how many decimal digits the currency's minor unit has in
// Stripe's amounts: 0 for JPY, 2 for USD, 3 for KWD, and 2 for a currency
// it does not know.
func Exponent(currency string) int {
	if e, ok := exponents[strings.ToLower(currency)]; ok {
		return e
	}
	return 2
}

// Decimal returns amount, in the currency's minor unit, as an exact decimal
// in major units with exactly Exponent(currency) decimals and no grouping:
// Decimal(1000, "jpy") = "1000", Decimal(1250, "usd") = "12.50",
// Decimal(-5, "usd") = "-0.05", Decimal(12500, "kwd") = "12.500". It is
// the form for APIs and number fields (HubSpot, CSV, JSON).
func Decimal(amount int64, currency string) string {
	whole, frac := split(amount, Exponent(currency))
	s := whole
	if frac != "" {
		s += "." + frac
	}
	if amount < 0 {
		return "-" + s
	}
	return s
}

// Format returns amount, in the currency's minor unit, for people: the
// major units with a comma between thousands and a point before the
// decimals, then a space and the upper-case currency code, with a minus
// sign in front when negative: Format(100000, "jpy") = "100,000 JPY",
// Format(1250, "usd") = "12.50 USD", Format(-123456789, "kwd") =
// "-123,456.789 KWD". The code, not a symbol, names the currency, because
// symbols are ambiguous ($ is USD, CAD, AUD, …). With no currency it
// returns the number alone, with two decimals.
func Format(amount int64, currency string) string {
	whole, frac := split(amount, Exponent(currency))
	var b strings.Builder
	if amount < 0 {
		b.WriteByte('-')
	}
	for i, d := range []byte(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(d)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	if currency != "" {
		b.WriteByte(' ')
		b.WriteString(strings.ToUpper(currency))
	}
	return b.String()
}

// split returns the digits of |amount| before and after the decimal point
// of a minor unit with exp decimals.
func split(amount int64, exp int) (whole, frac string) {
	mag := uint64(amount)
	if amount < 0 {
		mag = -mag // two's complement: exact even for math.MinInt64
	}
	digits := strconv.FormatUint(mag, 10)
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	return digits[:len(digits)-exp], digits[len(digits)-exp:]
}
