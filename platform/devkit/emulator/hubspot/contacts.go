package hubspot

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// objectJSON is HubSpot's SimplePublicObject; New is set only in upsert
// results. Properties map to null when a requested property has no value.
type objectJSON struct {
	ID         string             `json:"id"`
	Properties map[string]*string `json:"properties"`
	CreatedAt  string             `json:"createdAt"`
	UpdatedAt  string             `json:"updatedAt"`
	Archived   bool               `json:"archived"`
	New        *bool              `json:"new,omitempty"`
}

// render returns the object with the named properties (nil: the default
// read set); the system properties always come back, unknown names are
// ignored, defined but unset ones are null.
func (st *store) render(c *contact, names []string) objectJSON {
	if names == nil {
		names = defaultReadProperties
	}
	props := make(map[string]*string, len(names)+len(systemProperties))
	for _, n := range slices.Concat(names, systemProperties) {
		if _, defined := st.props[n]; !defined {
			continue
		}
		if v, ok := c.props[n]; ok {
			props[n] = &v
		} else {
			props[n] = nil
		}
	}
	return objectJSON{
		ID:         strconv.FormatInt(c.id, 10),
		Properties: props,
		CreatedAt:  timestamp(c.createdAt),
		UpdatedAt:  timestamp(c.updatedAt),
	}
}

// upsertInput is SimplePublicObjectBatchInputUpsert.
type upsertInput struct {
	ID                 *string                    `json:"id"`
	IDProperty         string                     `json:"idProperty"`
	Properties         map[string]json.RawMessage `json:"properties"`
	ObjectWriteTraceID string                     `json:"objectWriteTraceId"`
}

// batchError is one entry of a 207's errors array.
type batchError struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context,omitempty"`
	Errors   []errorDetail       `json:"errors,omitempty"`
}

type batchResponse struct {
	Status      string       `json:"status"`
	Results     []objectJSON `json:"results"`
	NumErrors   int          `json:"numErrors,omitempty"`
	Errors      []batchError `json:"errors,omitempty"`
	StartedAt   string       `json:"startedAt"`
	CompletedAt string       `json:"completedAt"`
}

// batchUpsert is POST /crm/v3/objects/contacts/batch/upsert. The whole batch
// is applied under the server lock, so concurrent batches with the same
// email never create two contacts.
func (s *Server) batchUpsert(c *call, r *http.Request, _ string) {
	var body struct {
		Inputs []upsertInput `json:"inputs"`
	}
	if !c.decode(r, &body) {
		return
	}
	inputs, values, e := s.checkBatch(body.Inputs)
	if e != nil {
		c.fail(http.StatusBadRequest, e)
		return
	}

	s.mu.Lock()
	allTraced := !slices.ContainsFunc(inputs, func(in upsertInput) bool { return in.ObjectWriteTraceID == "" })
	atomic := s.needTraceIDs && !allTraced
	st := &s.store
	if atomic {
		st.begin()
	}
	var (
		results []objectJSON
		errs    []batchError
		first   *inputError
	)
	for i, in := range inputs {
		obj, ie := st.upsertOne(in, values[i], c.now, s.portalID)
		if ie != nil {
			if first == nil {
				first = ie
			}
			ctx := map[string][]string{"ids": {*in.ID}}
			if in.ObjectWriteTraceID != "" {
				ctx["objectWriteTraceId"] = []string{in.ObjectWriteTraceID}
			}
			errs = append(errs, batchError{Status: "error", Category: ie.category, Message: ie.message, Context: ctx, Errors: ie.errors})
			continue
		}
		results = append(results, obj)
	}
	switch {
	case atomic && first != nil:
		st.rollback()
	case atomic:
		st.commit()
	}
	if len(results) > 0 && (!atomic || first == nil) {
		s.changed()
	}
	s.mu.Unlock()

	if atomic && first != nil {
		c.fail(http.StatusBadRequest, &apiError{Message: first.message, Category: first.category, Errors: first.errors})
		return
	}
	// HubSpot does not promise results in input order; these come in record
	// id order so a client has to match them by id or property.
	slices.SortFunc(results, func(a, b objectJSON) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID))
	})
	resp := batchResponse{Status: "COMPLETE", Results: results, StartedAt: timestamp(c.now), CompletedAt: timestamp(c.now)}
	if resp.Results == nil {
		resp.Results = []objectJSON{}
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusMultiStatus
		resp.NumErrors, resp.Errors = len(errs), errs
	}
	c.json(status, resp)
}

// checkBatch applies the checks that fail a whole batch with 400: input
// count, required fields, JSON value types, the idProperty, and duplicate
// ids. It returns each input's property values as strings.
func (s *Server) checkBatch(inputs []upsertInput) ([]upsertInput, []map[string]string, *apiError) {
	if inputs == nil {
		return nil, nil, validationError("Invalid input JSON: Cannot build BatchInputSimplePublicObjectBatchInputUpsert, " +
			"some of required attributes are not set [inputs]")
	}
	if len(inputs) > MaxBatchInputs {
		return nil, nil, validationError("Batch input limit exceeded: %d inputs, at most %d are allowed per request", len(inputs), MaxBatchInputs)
	}
	values := make([]map[string]string, len(inputs))
	for i, in := range inputs {
		var missing []string
		if in.ID == nil {
			missing = append(missing, "id")
		}
		if in.Properties == nil {
			missing = append(missing, "properties")
		}
		if len(missing) > 0 {
			return nil, nil, validationError("Invalid input JSON: Cannot build SimplePublicObjectBatchInputUpsert, "+
				"some of required attributes are not set [%s]", strings.Join(missing, ", "))
		}
		if in.IDProperty == "" {
			return nil, nil, validationError("hubspot emulator: inputs[%d] has no idProperty; upsert identifies records by email or a unique property", i)
		}
		values[i] = make(map[string]string, len(in.Properties))
		for name, raw := range in.Properties {
			v, ok := scalar(raw)
			if !ok {
				return nil, nil, validationError("Invalid input JSON: the value of property %s must be a string, number or boolean", name)
			}
			values[i][name] = v
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(inputs))
	var dups []string
	for _, in := range inputs {
		if in.IDProperty != "email" {
			p, ok := s.store.props[in.IDProperty]
			if !ok {
				return nil, nil, &apiError{
					Message:  fmt.Sprintf("Unable to perform update/upsert: property %s does not exist", in.IDProperty),
					Category: categoryValidation,
					Context:  map[string][]string{"propertyName": {in.IDProperty}},
				}
			}
			if !p.HasUniqueValue || p.HubSpotDefined {
				return nil, nil, validationError("Unable to perform update/upsert by non-unique 0-1 property %s", in.IDProperty)
			}
		}
		key := in.IDProperty + "\x00" + idKey(in.IDProperty, *in.ID)
		if seen[key] && !slices.Contains(dups, *in.ID) {
			dups = append(dups, *in.ID)
		}
		seen[key] = true
	}
	if len(dups) > 0 {
		return nil, nil, validationError("Duplicate IDs found in batch input: [%s]. IDs must be unique", strings.Join(dups, ", "))
	}
	return inputs, values, nil
}

// idKey is how an id compares for its idProperty.
func idKey(idProperty, id string) string {
	if idProperty == "email" {
		return normalizeEmail(id)
	}
	return strings.TrimSpace(id)
}

// scalar converts a JSON property value to HubSpot's string form; null
// clears the property like "".
func scalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", false
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err == nil
	case bytes.Equal(raw, []byte("null")):
		return "", true
	case bytes.Equal(raw, []byte("true")), bytes.Equal(raw, []byte("false")):
		return string(raw), true
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		return string(raw), true
	}
	return "", false
}

// upsertOne validates and applies one input. Callers hold s.mu.
func (st *store) upsertOne(in upsertInput, raw map[string]string, now time.Time, portalID int64) (objectJSON, *inputError) {
	idProp := st.props[in.IDProperty]
	key, kerr := normalize(idProp, *in.ID)
	if kerr == nil && key == "" {
		kerr = &fieldError{name: idProp.Name, code: "INVALID_" + strings.ToUpper(idProp.Type),
			message: fmt.Sprintf("The id of an upsert by %s cannot be empty", idProp.Name)}
		if idProp.Name == "email" {
			kerr.code, kerr.message = "INVALID_EMAIL", "Email address  is invalid"
		}
	}
	var ferrs []fieldError
	if kerr != nil {
		ferrs = append(ferrs, *kerr)
	}
	values := make(map[string]string, len(raw)+1)
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		p, ok := st.props[name]
		if !ok {
			ferrs = append(ferrs, fieldError{name: name, code: "PROPERTY_DOESNT_EXIST",
				message: fmt.Sprintf("Property \"%s\" does not exist", name)})
			continue
		}
		v, ferr := normalize(p, raw[name])
		if ferr != nil {
			if name != in.IDProperty || kerr == nil { // report a bad id once
				ferrs = append(ferrs, *ferr)
			}
			continue
		}
		if name == in.IDProperty && kerr == nil && v != key {
			ferrs = append(ferrs, fieldError{name: name, code: "INVALID_" + strings.ToUpper(p.Type),
				message: fmt.Sprintf("hubspot emulator: properties.%s %q differs from the input's id %q", name, raw[name], *in.ID)})
			continue
		}
		values[name] = v
	}
	if len(ferrs) > 0 {
		return objectJSON{}, propertyErrors(portalID, ferrs)
	}
	values[in.IDProperty] = key

	target := st.findBy(in.IDProperty, key)
	if ie := st.uniqueConflict(target, values); ie != nil {
		return objectJSON{}, ie
	}
	created := target == nil
	if created {
		target = st.create(now)
	}
	st.set(target, values, now)

	names := slices.Collect(maps.Keys(values))
	obj := st.render(target, names)
	for n, v := range values {
		if v == "" { // cleared: said back as sent
			obj.Properties[n] = new(string)
		}
	}
	obj.New = &created
	return obj, nil
}

// getContact is GET /crm/v3/objects/contacts/{id}[?idProperty=…].
func (s *Server) getContact(c *call, r *http.Request, id string) {
	q := r.URL.Query()
	for _, p := range []string{"associations", "propertiesWithHistory"} {
		if q.Get(p) != "" {
			c.fail(http.StatusBadRequest, validationError("hubspot emulator: %s is not emulated", p))
			return
		}
	}
	names := propertyNames(q["properties"])
	idProp := q.Get("idProperty")
	if idProp == "" {
		idProp = "hs_object_id"
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var key string
	switch idProp {
	case "hs_object_id":
		key = strings.TrimSpace(id)
	case "email":
		key = normalizeEmail(id)
	default:
		p, ok := s.store.props[idProp]
		if !ok || !p.HasUniqueValue {
			c.fail(http.StatusBadRequest, validationError("Unable to perform lookup by non-unique 0-1 property %s", idProp))
			return
		}
		key = strings.TrimSpace(id)
	}
	target := s.store.findBy(idProp, key)
	if target == nil || q.Get("archived") == "true" {
		c.fail(http.StatusNotFound, &apiError{
			Message:  "Object not found.  objectId are usually numeric.",
			Category: categoryNotFound,
			Context:  map[string][]string{"id": {id}},
		})
		return
	}
	c.json(http.StatusOK, s.store.render(target, names))
}

// propertyNames flattens repeated and comma-separated properties
// parameters; nil when none were given.
func propertyNames(params []string) []string {
	var names []string
	for _, p := range params {
		for n := range strings.SplitSeq(p, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// Search limits HubSpot documents.
const (
	maxFilterGroups     = 5
	maxFiltersPerGroup  = 6
	maxFiltersPerSearch = 18
)

type searchFilter struct {
	PropertyName string            `json:"propertyName"`
	Operator     string            `json:"operator"`
	Value        json.RawMessage   `json:"value"`
	Values       []json.RawMessage `json:"values"`
	HighValue    json.RawMessage   `json:"highValue"`
}

type searchRequest struct {
	FilterGroups []struct {
		Filters []searchFilter `json:"filters"`
	} `json:"filterGroups"`
	Properties []string          `json:"properties"`
	Limit      *int              `json:"limit"`
	After      json.RawMessage   `json:"after"`
	Sorts      []json.RawMessage `json:"sorts"`
	Query      string            `json:"query"`
}

type searchResponse struct {
	Total   int          `json:"total"`
	Results []objectJSON `json:"results"`
	Paging  *pagingJSON  `json:"paging,omitempty"`
}

type pagingJSON struct {
	Next struct {
		After string `json:"after"`
		Link  string `json:"link"`
	} `json:"next"`
}

// search is POST /crm/v3/objects/contacts/search: filter groups are ORed,
// the filters of a group ANDed; after is an offset.
func (s *Server) search(c *call, r *http.Request, _ string) {
	var req searchRequest
	if !c.decode(r, &req) {
		return
	}
	limit, offset, sortBy, desc, e := checkSearch(&req)
	if e != nil {
		c.fail(http.StatusBadRequest, e)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range req.FilterGroups {
		for _, f := range g.Filters {
			if _, ok := s.store.props[f.PropertyName]; !ok {
				c.fail(http.StatusBadRequest, validationError("There was a problem with the request: property %s does not exist", f.PropertyName))
				return
			}
		}
	}
	if _, ok := s.store.props[sortBy]; sortBy != "" && !ok {
		c.fail(http.StatusBadRequest, validationError("There was a problem with the request: sort property %s does not exist", sortBy))
		return
	}
	var hits []*contact
	for _, ct := range s.store.contacts {
		if c.now.Before(ct.createdAt.Add(s.searchIndexDelay)) {
			continue // not indexed yet
		}
		if s.store.matches(ct, &req) {
			hits = append(hits, ct)
		}
	}
	slices.SortFunc(hits, func(a, b *contact) int {
		if sortBy != "" {
			if d := s.store.compareProp(sortBy, a, b, desc); d != 0 {
				return d
			}
		}
		return cmp.Compare(a.id, b.id)
	})

	resp := searchResponse{Total: len(hits), Results: []objectJSON{}}
	names := req.Properties
	if len(names) == 0 {
		names = nil
	}
	end := min(offset+limit, len(hits))
	for _, ct := range hits[min(offset, len(hits)):end] {
		resp.Results = append(resp.Results, s.store.render(ct, names))
	}
	if end < len(hits) {
		resp.Paging = &pagingJSON{}
		resp.Paging.Next.After = strconv.Itoa(end)
		resp.Paging.Next.Link = "?after=" + strconv.Itoa(end)
	}
	c.json(http.StatusOK, resp)
}

var searchOperators = map[string]bool{
	"EQ": true, "NEQ": true, "LT": true, "LTE": true, "GT": true, "GTE": true,
	"IN": true, "NOT_IN": true, "HAS_PROPERTY": true, "NOT_HAS_PROPERTY": true,
}

// checkSearch validates the request shape and returns the page, offset
// and sort.
func checkSearch(req *searchRequest) (limit, offset int, sortBy string, desc bool, e *apiError) {
	if req.Query != "" {
		return 0, 0, "", false, validationError("hubspot emulator: full-text query is not emulated; use filterGroups")
	}
	limit = 10
	if req.Limit != nil && *req.Limit != 0 {
		limit = *req.Limit
	}
	if limit < 0 || limit > MaxSearchLimit {
		return 0, 0, "", false, validationError("There was a problem with the request: limit must be between 1 and %d", MaxSearchLimit)
	}
	if len(req.After) > 0 && !bytes.Equal(req.After, []byte("null")) {
		a, ok := scalar(req.After)
		n, err := strconv.Atoi(a)
		if !ok || err != nil || n < 0 {
			return 0, 0, "", false, validationError("There was a problem with the request: after must be a non-negative integer, got %s", req.After)
		}
		offset = n
	}
	if offset+limit > MaxSearchResults {
		return 0, 0, "", false, validationError("There was a problem with the request: search paging is limited to %d results", MaxSearchResults)
	}
	total := 0
	if len(req.FilterGroups) > maxFilterGroups {
		return 0, 0, "", false, validationError("There was a problem with the request: at most %d filterGroups are allowed", maxFilterGroups)
	}
	for _, g := range req.FilterGroups {
		if len(g.Filters) > maxFiltersPerGroup {
			return 0, 0, "", false, validationError("There was a problem with the request: at most %d filters per group are allowed", maxFiltersPerGroup)
		}
		total += len(g.Filters)
		for _, f := range g.Filters {
			if !searchOperators[f.Operator] {
				return 0, 0, "", false, validationError("hubspot emulator: search operator %q is not emulated", f.Operator)
			}
		}
	}
	if total > maxFiltersPerSearch {
		return 0, 0, "", false, validationError("There was a problem with the request: at most %d filters are allowed", maxFiltersPerSearch)
	}
	switch len(req.Sorts) {
	case 0:
	case 1:
		var str string
		var obj struct {
			PropertyName string `json:"propertyName"`
			Direction    string `json:"direction"`
		}
		switch {
		case json.Unmarshal(req.Sorts[0], &str) == nil:
			sortBy, desc = strings.TrimPrefix(str, "-"), strings.HasPrefix(str, "-")
		case json.Unmarshal(req.Sorts[0], &obj) == nil && obj.PropertyName != "":
			sortBy, desc = obj.PropertyName, strings.EqualFold(obj.Direction, "DESCENDING")
		default:
			return 0, 0, "", false, validationError("There was a problem with the request: invalid sort %s", req.Sorts[0])
		}
	default:
		return 0, 0, "", false, validationError("There was a problem with the request: only one sort is allowed")
	}
	return limit, offset, sortBy, desc, nil
}

// matches reports whether ct satisfies any filter group (all contacts when
// there are none).
func (st *store) matches(ct *contact, req *searchRequest) bool {
	if len(req.FilterGroups) == 0 {
		return true
	}
	for _, g := range req.FilterGroups {
		all := true
		for _, f := range g.Filters {
			if !st.filterMatches(ct, f) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (st *store) filterMatches(ct *contact, f searchFilter) bool {
	v, has := ct.props[f.PropertyName]
	switch f.Operator {
	case "HAS_PROPERTY":
		return has
	case "NOT_HAS_PROPERTY":
		return !has
	}
	p := st.props[f.PropertyName]
	want, _ := scalar(f.Value)
	switch f.Operator {
	case "EQ":
		return has && compareValues(p, v, want) == 0
	case "NEQ":
		return !has || compareValues(p, v, want) != 0
	case "LT":
		return has && compareValues(p, v, want) < 0
	case "LTE":
		return has && compareValues(p, v, want) <= 0
	case "GT":
		return has && compareValues(p, v, want) > 0
	case "GTE":
		return has && compareValues(p, v, want) >= 0
	case "IN", "NOT_IN":
		in := false
		for _, raw := range f.Values {
			w, _ := scalar(raw)
			if has && compareValues(p, v, w) == 0 {
				in = true
				break
			}
		}
		return in == (f.Operator == "IN")
	}
	return false
}

// compareValues orders a stored value and a filter value: numerically for
// number properties, case-insensitively otherwise.
func compareValues(p *Property, stored, want string) int {
	if p.Type == "number" {
		a, errA := strconv.ParseFloat(stored, 64)
		b, errB := strconv.ParseFloat(strings.TrimSpace(want), 64)
		if errA == nil && errB == nil {
			return cmp.Compare(a, b)
		}
	}
	if p.Type == "datetime" {
		if ms, err := strconv.ParseInt(want, 10, 64); err == nil {
			want = timestamp(time.UnixMilli(ms))
		}
	}
	return strings.Compare(strings.ToLower(stored), strings.ToLower(strings.TrimSpace(want)))
}

// compareProp orders two contacts by a property, reversed when desc; unset
// values sort last either way.
func (st *store) compareProp(name string, a, b *contact, desc bool) int {
	va, okA := a.props[name]
	vb, okB := b.props[name]
	switch {
	case !okA && !okB:
		return 0
	case !okA:
		return 1
	case !okB:
		return -1
	}
	if desc {
		return compareValues(st.props[name], vb, va)
	}
	return compareValues(st.props[name], va, vb)
}
