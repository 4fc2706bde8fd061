package hubspot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	crmhubspot "github.com/switchyard/switchyard/services/crm/hubspot"
)

// inert reports what is wrong with a stored property value, or "".
func inert(v string) string {
	if !utf8.ValidString(v) {
		return "invalid UTF-8"
	}
	for _, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "a hidden character " + string(rune(r))
		}
	}
	if n := len(utf16.Encode([]rune(v))); n > crmhubspot.MaxPropertyValue {
		return "longer than HubSpot's limit"
	}
	return ""
}

func TestPropertyValueMakesHostileValuesInert(t *testing.T) {
	corpus := append(testkit.HostileCorpus(), testkit.Hostile{Name: "over the limit", Value: strings.Repeat("😀", crmhubspot.MaxPropertyValue)})
	for _, h := range corpus {
		if got := crmhubspot.PropertyValue(h.Value); inert(got) != "" || strings.Contains(got, "\n") {
			t.Errorf("%s: PropertyValue keeps %s", h.Name, inert(got))
		}
	}
}

// Every property value is stored inert and within HubSpot's limit, and a
// contact whose email HubSpot would refuse is not sent at all: its result
// is ErrInvalidEmail, the others are written.
func TestUpsertSendsInertValuesAndSkipsBadEmails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	var inputs []crmhubspot.ContactInput
	for _, h := range testkit.HostileCorpus() {
		inputs = append(inputs, crmhubspot.ContactInput{Email: "x" + strings.ReplaceAll(h.Name, " ", "-") + "@example.com",
			Properties: map[string]string{"firstname": h.Value, "lastname": h.Value, "company": h.Value}})
	}
	inputs = append(inputs, crmhubspot.ContactInput{Email: "long@example.com", Properties: map[string]string{"lastname": strings.Repeat("L", 70000)}})
	bad := []string{"ada lovelace@example.com", "no-at-sign", strings.Repeat("a", 250) + "@example.com", "<@U024BE7LH>@evil.example"}
	for _, b := range bad {
		inputs = append(inputs, crmhubspot.ContactInput{Email: b, Properties: map[string]string{"firstname": "x"}})
	}
	res, err := e.client.UpsertContacts(context.Background(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if i >= len(inputs)-len(bad) {
			if !errors.Is(r.Err, crmhubspot.ErrInvalidEmail) || errclass.Of(r.Err) != errclass.ClassPermanent {
				t.Errorf("%q: got %v, want a permanent ErrInvalidEmail", inputs[i].Email, r.Err)
			}
			continue
		}
		if r.Err != nil {
			t.Errorf("%q: %v", inputs[i].Email, r.Err)
		}
	}
	if n := len(e.srv.Contacts()); n != len(inputs)-len(bad) {
		t.Errorf("%d contacts, want %d: a bad email was sent", n, len(inputs)-len(bad))
	}
	for _, c := range e.srv.Contacts() {
		for k, v := range c.Properties {
			if why := inert(v); why != "" {
				t.Errorf("contact %s: %s is stored with %s", c.Properties["email"], k, why)
			}
		}
	}
}
