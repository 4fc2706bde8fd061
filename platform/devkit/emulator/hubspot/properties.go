package hubspot

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Property is a contact property definition, as the properties API
// describes it.
type Property struct {
	Name           string
	Label          string
	Type           string // bool, enumeration, date, datetime, string, number, phone_number
	FieldType      string // booleancheckbox, checkbox, date, number, phonenumber, radio, select, text, textarea, html, file
	GroupName      string
	Description    string
	Options        []Option
	DisplayOrder   int
	HasUniqueValue bool
	Hidden         bool
	FormField      bool
	// HubSpotDefined marks the default properties every account has.
	HubSpotDefined bool
	// ReadOnlyValue marks properties only HubSpot writes (hs_object_id,
	// lastmodifieddate); writing one is a per-input error.
	ReadOnlyValue bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Option is one allowed value of an enumeration property.
type Option struct {
	Label        string
	Value        string
	Description  string
	DisplayOrder int
	Hidden       bool
}

// Default contact properties (a subset of HubSpot's), with the options
// HubSpot gives its enumerations.
var (
	lifecycleStages = []string{"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
		"opportunity", "customer", "evangelist", "other"}
	leadStatuses = []string{"NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
		"ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"}
)

func defaultProperties() []Property {
	text := func(name, label string) Property {
		return Property{Name: name, Label: label, Type: "string", FieldType: "text", GroupName: "contactinformation", FormField: true}
	}
	enum := func(name, label, fieldType string, values, labels []string) Property {
		p := Property{Name: name, Label: label, Type: "enumeration", FieldType: fieldType, GroupName: "contactinformation", FormField: true}
		for i, v := range values {
			p.Options = append(p.Options, Option{Label: labels[i], Value: v, DisplayOrder: i})
		}
		return p
	}
	props := []Property{
		text("email", "Email"),
		text("firstname", "First Name"),
		text("lastname", "Last Name"),
		text("company", "Company Name"),
		text("jobtitle", "Job Title"),
		text("website", "Website URL"),
		text("address", "Street Address"),
		text("city", "City"),
		text("state", "State/Region"),
		text("zip", "Postal Code"),
		text("country", "Country/Region"),
		{Name: "phone", Label: "Phone Number", Type: "string", FieldType: "phonenumber", GroupName: "contactinformation", FormField: true},
		{Name: "mobilephone", Label: "Mobile Phone Number", Type: "string", FieldType: "phonenumber", GroupName: "contactinformation", FormField: true},
		{Name: "message", Label: "Message", Type: "string", FieldType: "textarea", GroupName: "contactinformation", FormField: true},
		enum("lifecyclestage", "Lifecycle Stage", "radio", lifecycleStages, []string{"Subscriber", "Lead",
			"Marketing Qualified Lead", "Sales Qualified Lead", "Opportunity", "Customer", "Evangelist", "Other"}),
		enum("hs_lead_status", "Lead Status", "radio", leadStatuses, []string{"New", "Open", "In Progress",
			"Open Deal", "Unqualified", "Attempted to Contact", "Connected", "Bad Timing"}),
		{Name: "createdate", Label: "Create Date", Type: "datetime", FieldType: "date", GroupName: "contactinformation"},
		{Name: "lastmodifieddate", Label: "Last Modified Date", Type: "datetime", FieldType: "date", GroupName: "contactinformation", ReadOnlyValue: true},
		{Name: "hs_object_id", Label: "Record ID", Type: "number", FieldType: "number", GroupName: "contactinformation", ReadOnlyValue: true},
	}
	for i := range props {
		props[i].HubSpotDefined = true
		props[i].DisplayOrder = -1
	}
	return props
}

// Default property groups of contacts.
var defaultGroups = []string{"contactinformation", "emailinformation", "conversioninformation",
	"sales_properties", "socialmediainformation", "analyticsinformation"}

// fieldTypes lists the field types valid for each property type.
var fieldTypes = map[string][]string{
	"string":       {"text", "textarea", "phonenumber", "html", "file"},
	"number":       {"number"},
	"bool":         {"booleancheckbox"},
	"enumeration":  {"select", "radio", "checkbox", "booleancheckbox"},
	"date":         {"date"},
	"datetime":     {"date"},
	"phone_number": {"phonenumber"},
}

var propertyName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// errPropertyExists is what addProperty returns for a taken name.
var errPropertyExists = errors.New("property exists")

// invalid is a validation failure whose text is the message HubSpot's 400
// carries (hence capitalised, unlike Go error strings).
type invalid string

func (e invalid) Error() string { return string(e) }

func invalidf(format string, args ...any) error { return invalid(fmt.Sprintf(format, args...)) }

// checkDefinition validates a new property against the rules HubSpot
// enforces, before the store is consulted.
func checkDefinition(p *Property) error {
	switch {
	case p.Name == "" || p.Label == "" || p.Type == "" || p.FieldType == "" || p.GroupName == "":
		var missing []string
		for _, f := range []struct{ name, v string }{{"name", p.Name}, {"label", p.Label},
			{"type", p.Type}, {"fieldType", p.FieldType}, {"groupName", p.GroupName}} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
		return invalidf("Cannot build PropertyCreate, some of required attributes are not set [%s]", strings.Join(missing, ", "))
	case len(p.Name) > 100 || !propertyName.MatchString(p.Name):
		return invalidf("Property name %q is invalid: it must start with a lowercase letter and "+
			"contain only lowercase letters, numbers and underscores", p.Name)
	case strings.HasPrefix(p.Name, "hs_"):
		return invalidf("Property name %q is invalid: the hs_ prefix is reserved for HubSpot", p.Name)
	}
	valid, ok := fieldTypes[p.Type]
	if !ok {
		return invalidf("Property type %q is not valid", p.Type)
	}
	if !slices.Contains(valid, p.FieldType) {
		return invalidf("Field type %q is not valid for a property of type %q; use one of %v", p.FieldType, p.Type, valid)
	}
	if p.HasUniqueValue && !(p.Type == "string" && p.FieldType == "text" || p.Type == "number") {
		return invalidf("Property %q cannot have unique values: only single-line text and number properties can", p.Name)
	}
	if p.Type != "enumeration" && len(p.Options) > 0 {
		return invalidf("Options are only allowed for enumeration properties, not %q", p.Type)
	}
	seen := make(map[string]bool, len(p.Options))
	for _, o := range p.Options {
		if o.Value == "" || o.Label == "" {
			return invalidf("Every option of property %q needs a label and a value", p.Name)
		}
		if seen[o.Value] {
			return invalidf("Option value %q appears twice in property %q", o.Value, p.Name)
		}
		seen[o.Value] = true
	}
	return nil
}

// addProperty stores a checked definition. Callers hold s.mu.
func (st *store) addProperty(p Property, now time.Time) (Property, error) {
	if _, ok := st.props[p.Name]; ok {
		return Property{}, errPropertyExists
	}
	if !st.groups[p.GroupName] {
		return Property{}, invalidf("Property group %q does not exist", p.GroupName)
	}
	if p.HasUniqueValue {
		n := 0
		for _, q := range st.props {
			if q.HasUniqueValue && !q.HubSpotDefined {
				n++
			}
		}
		if n >= MaxUniqueProperties {
			return Property{}, invalidf("Cannot create property %q: the limit of %d unique value properties is reached", p.Name, MaxUniqueProperties)
		}
	}
	p.HubSpotDefined, p.ReadOnlyValue = false, false
	p.CreatedAt, p.UpdatedAt = now, now
	p.Options = slices.Clone(p.Options)
	st.props[p.Name] = &p
	st.dirtyProps[p.Name] = struct{}{}
	return p, nil
}

// SeedProperty creates a custom property as POST /crm/v3/properties/contacts
// would, with the same checks.
func (s *Server) SeedProperty(p Property) error {
	if err := checkDefinition(&p); err != nil {
		return fmt.Errorf("seed property: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.store.addProperty(p, s.now()); err != nil {
		return fmt.Errorf("seed property %q: %w", p.Name, err)
	}
	s.changed()
	return nil
}

// Property returns the definition of the named contact property.
func (s *Server) Property(name string) (Property, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.store.props[name]
	if !ok {
		return Property{}, false
	}
	out := *p
	out.Options = slices.Clone(p.Options)
	return out, true
}

// Wire shapes of the properties API.

type optionJSON struct {
	Label        string `json:"label"`
	Value        string `json:"value"`
	Description  string `json:"description,omitempty"`
	DisplayOrder int    `json:"displayOrder"`
	Hidden       bool   `json:"hidden"`
}

type propertyCreateJSON struct {
	Name                 string       `json:"name"`
	Label                string       `json:"label"`
	Type                 string       `json:"type"`
	FieldType            string       `json:"fieldType"`
	GroupName            string       `json:"groupName"`
	Description          string       `json:"description"`
	Options              []optionJSON `json:"options"`
	DisplayOrder         *int         `json:"displayOrder"`
	HasUniqueValue       bool         `json:"hasUniqueValue"`
	Hidden               bool         `json:"hidden"`
	FormField            bool         `json:"formField"`
	ExternalOptions      bool         `json:"externalOptions"`
	CalculationFormula   string       `json:"calculationFormula"`
	DataSensitivity      string       `json:"dataSensitivity"`
	ReferencedObjectType string       `json:"referencedObjectType"`
}

type modificationMetadata struct {
	Archivable         bool `json:"archivable"`
	ReadOnlyDefinition bool `json:"readOnlyDefinition"`
	ReadOnlyValue      bool `json:"readOnlyValue"`
	ReadOnlyOptions    bool `json:"readOnlyOptions"`
}

type propertyJSON struct {
	Name                 string               `json:"name"`
	Label                string               `json:"label"`
	Type                 string               `json:"type"`
	FieldType            string               `json:"fieldType"`
	Description          string               `json:"description"`
	GroupName            string               `json:"groupName"`
	Options              []optionJSON         `json:"options"`
	DisplayOrder         int                  `json:"displayOrder"`
	Calculated           bool                 `json:"calculated"`
	ExternalOptions      bool                 `json:"externalOptions"`
	HasUniqueValue       bool                 `json:"hasUniqueValue"`
	Hidden               bool                 `json:"hidden"`
	HubspotDefined       bool                 `json:"hubspotDefined,omitempty"`
	ModificationMetadata modificationMetadata `json:"modificationMetadata"`
	FormField            bool                 `json:"formField"`
	DataSensitivity      string               `json:"dataSensitivity"`
	CreatedAt            string               `json:"createdAt,omitempty"`
	UpdatedAt            string               `json:"updatedAt,omitempty"`
	Archived             bool                 `json:"archived"`
}

func (p *Property) toJSON() propertyJSON {
	out := propertyJSON{
		Name: p.Name, Label: p.Label, Type: p.Type, FieldType: p.FieldType, Description: p.Description,
		GroupName: p.GroupName, Options: []optionJSON{}, DisplayOrder: p.DisplayOrder,
		HasUniqueValue: p.HasUniqueValue, Hidden: p.Hidden, HubspotDefined: p.HubSpotDefined,
		ModificationMetadata: modificationMetadata{
			Archivable:         !p.HubSpotDefined,
			ReadOnlyDefinition: p.HubSpotDefined,
			ReadOnlyValue:      p.ReadOnlyValue,
		},
		FormField:       p.FormField,
		DataSensitivity: "non_sensitive",
	}
	if !p.CreatedAt.IsZero() {
		out.CreatedAt, out.UpdatedAt = timestamp(p.CreatedAt), timestamp(p.UpdatedAt)
	}
	for _, o := range p.Options {
		out.Options = append(out.Options, optionJSON(o))
	}
	return out
}

func (s *Server) createProperty(c *call, r *http.Request, _ string) {
	var in propertyCreateJSON
	if !c.decode(r, &in) {
		return
	}
	switch {
	case in.ExternalOptions, in.CalculationFormula != "", in.ReferencedObjectType != "":
		c.fail(http.StatusBadRequest, validationError(
			"hubspot emulator: externalOptions, calculationFormula and referencedObjectType are not emulated"))
		return
	case in.DataSensitivity != "" && in.DataSensitivity != "non_sensitive":
		c.fail(http.StatusBadRequest, validationError("hubspot emulator: dataSensitivity %q is not emulated", in.DataSensitivity))
		return
	}
	p := Property{
		Name: in.Name, Label: in.Label, Type: in.Type, FieldType: in.FieldType, GroupName: in.GroupName,
		Description: in.Description, HasUniqueValue: in.HasUniqueValue, Hidden: in.Hidden, FormField: in.FormField,
	}
	if in.DisplayOrder != nil {
		p.DisplayOrder = *in.DisplayOrder
	}
	for _, o := range in.Options {
		p.Options = append(p.Options, Option(o))
	}
	if err := checkDefinition(&p); err != nil {
		c.fail(http.StatusBadRequest, validationError("%s", err))
		return
	}
	s.mu.Lock()
	created, err := s.store.addProperty(p, c.now)
	if err == nil {
		s.changed()
	}
	s.mu.Unlock()
	switch {
	case errors.Is(err, errPropertyExists):
		c.fail(http.StatusConflict, &apiError{
			Message:  fmt.Sprintf("Property named '%s' already exists.", p.Name),
			Category: categoryExists,
			Context:  map[string][]string{"name": {p.Name}},
		})
	case err != nil:
		c.fail(http.StatusBadRequest, validationError("%s", err))
	default:
		c.json(http.StatusCreated, created.toJSON())
	}
}

func (s *Server) getProperty(c *call, r *http.Request, name string) {
	if archived := r.URL.Query().Get("archived"); archived == "true" {
		c.fail(http.StatusNotFound, propertyNotFound(name))
		return
	}
	p, ok := s.Property(name)
	if !ok {
		c.fail(http.StatusNotFound, propertyNotFound(name))
		return
	}
	c.json(http.StatusOK, p.toJSON())
}

func propertyNotFound(name string) *apiError {
	return &apiError{
		Message:  fmt.Sprintf("Unable to find property named '%s' for object type 0-1", name),
		Category: categoryNotFound,
	}
}

func (s *Server) listProperties(c *call, _ *http.Request, _ string) {
	s.mu.Lock()
	names := make([]string, 0, len(s.store.props))
	for n := range s.store.props {
		names = append(names, n)
	}
	slices.Sort(names)
	out := struct {
		Results []propertyJSON `json:"results"`
	}{Results: make([]propertyJSON, 0, len(names))}
	for _, n := range names {
		out.Results = append(out.Results, s.store.props[n].toJSON())
	}
	s.mu.Unlock()
	c.json(http.StatusOK, out)
}

func (s *Server) createGroup(c *call, r *http.Request, _ string) {
	var in struct {
		Name         string `json:"name"`
		Label        string `json:"label"`
		DisplayOrder *int   `json:"displayOrder"`
	}
	if !c.decode(r, &in) {
		return
	}
	if in.Name == "" || in.Label == "" {
		c.fail(http.StatusBadRequest, validationError("Property group needs a name and a label"))
		return
	}
	if !propertyName.MatchString(in.Name) {
		c.fail(http.StatusBadRequest, validationError("Property group name %q is invalid", in.Name))
		return
	}
	s.mu.Lock()
	exists := s.store.groups[in.Name]
	if !exists {
		s.store.groups[in.Name] = true
		s.store.dirtyGroups[in.Name] = struct{}{}
		s.changed()
	}
	s.mu.Unlock()
	if exists {
		c.fail(http.StatusConflict, &apiError{
			Message:  fmt.Sprintf("Property group named '%s' already exists.", in.Name),
			Category: categoryExists,
		})
		return
	}
	order := -1
	if in.DisplayOrder != nil {
		order = *in.DisplayOrder
	}
	c.json(http.StatusCreated, map[string]any{"name": in.Name, "label": in.Label, "displayOrder": order, "archived": false})
}
