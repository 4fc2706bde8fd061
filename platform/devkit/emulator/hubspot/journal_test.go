package hubspot_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
)

var _ statefile.Journaled = (*hubspot.Server)(nil)

// TestJournalKeepsContactsAndProperties: saves append only what changed
// (a contact's email moving to a new one included), and a reload from the
// journal alone, as after kill -9, has the account; a property group
// created through the API is kept too.
func TestJournalKeepsContactsAndProperties(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hubspot.json")
	e, k := openKept(t, path, hubspot.Options{})
	seedTextProperty(t, e.srv, "stripe_customer_id", true)
	wantStatus(t, e.upsert(t, byEmail("ada@example.com", map[string]any{"stripe_customer_id": "cus_1"}),
		byEmail("grace@example.com", map[string]any{"stripe_customer_id": "cus_2"})), http.StatusOK)
	mustNoErr(t, k.Save())
	wantStatus(t, e.upsert(t, in{ID: "cus_1", IDProperty: "stripe_customer_id", Properties: map[string]any{"email": "ada@new.example.com"}}), http.StatusOK)
	wantStatus(t, e.do(t, http.MethodPost, "/crm/v3/properties/contacts/groups", token, map[string]any{"name": "billing", "label": "Billing"}), http.StatusCreated)
	mustNoErr(t, k.Save())
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a save wrote the whole account (stat: %v)", err)
	}

	again, _ := openKept(t, path, hubspot.Options{})
	if got, want := len(again.srv.Contacts()), 2; got != want {
		t.Errorf("reloaded %d contacts, want %d", got, want)
	}
	emails := map[string]bool{}
	for _, c := range again.srv.Contacts() {
		emails[c.Properties["email"]] = true
	}
	if !emails["ada@new.example.com"] || !emails["grace@example.com"] || emails["ada@example.com"] {
		t.Errorf("reloaded emails %v, want ada@new.example.com and grace@example.com", emails)
	}
	decodeError(t, again.do(t, http.MethodPost, "/crm/v3/properties/contacts/groups", token, map[string]any{"name": "billing", "label": "Billing"}), http.StatusConflict, "OBJECT_ALREADY_EXISTS")
	if _, ok := again.srv.Property("stripe_customer_id"); !ok {
		t.Error("custom property lost")
	}
}
