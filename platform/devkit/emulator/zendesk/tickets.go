package zendesk

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// route dispatches on the path. Paths may end in ".json", as Zendesk's do.
// Unknown paths get Zendesk's InvalidEndpoint 404; known paths with a method
// the emulator does not implement get 501, which Zendesk never answers, so
// the gap is unmistakable.
func (s *Server) route(c *call) {
	if isSelf(c.r) {
		s.showSelf(c, false)
		return
	}
	p := strings.TrimSuffix(c.r.URL.Path, ".json")
	rest, ok := strings.CutPrefix(p, "/api/v2/tickets")
	segs := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case !ok || (rest != "" && !strings.HasPrefix(rest, "/")):
		c.invalidEndpoint()
	case rest == "" || rest == "/":
		switch c.r.Method {
		case http.MethodGet:
			s.listTickets(c)
		case http.MethodPost:
			s.createHandler(c)
		default:
			c.notEmulated()
		}
	case len(segs) == 1:
		id, found := s.ticketID(segs[0])
		if !found {
			c.notFound()
			return
		}
		switch c.r.Method {
		case http.MethodGet:
			s.showTicket(c, id)
		case http.MethodPut:
			s.updateHandler(c, id)
		default:
			c.notEmulated()
		}
	case len(segs) == 2 && (segs[1] == "tags" || segs[1] == "comments"):
		id, found := s.ticketID(segs[0])
		if !found {
			c.notFound()
			return
		}
		if segs[1] == "comments" {
			if c.r.Method != http.MethodGet {
				c.notEmulated()
				return
			}
			s.listComments(c, id)
			return
		}
		s.tagsHandler(c, id)
	default:
		c.invalidEndpoint()
	}
}

func (c *call) invalidEndpoint() {
	c.jsonError(http.StatusNotFound, "InvalidEndpoint", "Not found")
}

func (c *call) notEmulated() {
	c.jsonError(http.StatusNotImplemented, "NotEmulated",
		fmt.Sprintf("zendesk emulator: %s %s is not emulated", c.r.Method, c.r.URL.Path))
}

func (c *call) recordInvalid(d details) {
	c.writeJSON(http.StatusUnprocessableEntity, mustJSON(struct {
		Error       string  `json:"error"`
		Description string  `json:"description"`
		Details     details `json:"details"`
	}{"RecordInvalid", "Record validation errors", d}))
}

// badBody answers a body that is not JSON or lacks its envelope key.
func (c *call) badBody(err error) {
	if e := (errInvalidJSON{}); errors.As(err, &e) {
		c.jsonError(http.StatusBadRequest, "InvalidJSON", "The request body is not valid JSON: "+e.err.Error())
		return
	}
	c.jsonError(http.StatusBadRequest, "ParameterMissing", err.Error())
}

// ticketID parses a path id and reports whether that ticket exists.
func (s *Server) ticketID(seg string) (int64, bool) {
	id, err := strconv.ParseInt(seg, 10, 64)
	if err != nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tickets[id]
	return id, ok
}

func (s *Server) showTicket(c *call, id int64) {
	s.mu.Lock()
	t, ok := s.tickets[id]
	var out ticketJSON
	if ok {
		out = renderTicket(t, c.base())
	}
	s.mu.Unlock()
	if !ok {
		c.notFound()
		return
	}
	c.writeJSON(http.StatusOK, mustJSON(map[string]any{"ticket": out}))
}

func (s *Server) createHandler(c *call) {
	in, err := ticketFields(c.body)
	if err != nil {
		c.badBody(err)
		return
	}
	s.mu.Lock()
	agent := s.users[c.agent.ID]
	t, verr := s.createTicket(in, agent, c.now.UTC())
	var (
		out     []byte
		crash   = NoCrash
		hook    func(Ticket) Crash
		created Ticket
	)
	if verr == nil {
		out = mustJSON(map[string]any{
			"ticket": renderTicket(t, c.base()),
			"audit":  s.renderAudit(t, nil, agent.ID, c.now),
		})
		created = t.clone()
		if len(s.crashQueue) > 0 {
			crash, s.crashQueue = s.crashQueue[0], s.crashQueue[1:]
		} else {
			hook = s.crashHook
		}
	}
	s.mu.Unlock()
	if verr != nil {
		c.recordInvalid(verr.Details)
		return
	}
	if hook != nil {
		crash = hook(created)
	}
	switch crash {
	case CrashDropConnection:
		c.dropConnection()
	case CrashStatus500:
		c.writeText(http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError))
	default:
		c.w.Header().Set("Location", ticketURL(c.base(), t.ID))
		c.writeJSON(http.StatusCreated, out)
	}
}

// createTicket validates in and stores the ticket; the caller holds s.mu.
func (s *Server) createTicket(in fields, agent *User, now time.Time) (*Ticket, *ValidationError) {
	d := details{}
	t := &Ticket{Status: "new", SubmitterID: agent.ID, CreatedAt: now, UpdatedAt: now, Tags: []string{}}

	comment, hasComment := s.parseComment(in, d, agent)
	if !hasComment {
		// A legacy top-level description works as the first comment.
		if v, _, ok := in.str("description"); ok && strings.TrimSpace(v) != "" {
			comment, hasComment = Comment{AuthorID: agent.ID, Body: v, Public: true}, true
		}
	}
	if !hasComment {
		d.add("base", "Description: cannot be blank", "BlankValue")
	}
	applyScalars(t, in, d)
	requester, newUser := s.parseRequester(in, d, agent)
	s.applyAssignment(t, in, d)
	if len(d) > 0 {
		return nil, &ValidationError{Details: d}
	}

	if newUser != nil {
		requester = s.addUser(*newUser).ID
	}
	t.RequesterID = requester
	s.nextTicket++
	t.ID = s.nextTicket
	s.nextComment++
	comment.ID, comment.CreatedAt = s.nextComment, now
	t.Comments = []Comment{comment}
	t.Description = comment.Body
	t.IsPublic = comment.Public
	if t.Status == "new" && t.AssigneeID != 0 {
		t.Status = "open" // Zendesk opens a ticket once it has an assignee
	}
	s.tickets[t.ID] = t
	s.dirtyTickets[t.ID] = struct{}{}
	s.changed()
	return t, nil
}

// parseComment reads "comment" ({"body"|"html_body","public","author_id"}).
func (s *Server) parseComment(in fields, d details, agent *User) (Comment, bool) {
	obj, ok := in.object("comment")
	if !ok {
		d.invalid("comment", "Comment")
		return Comment{}, false
	}
	if obj == nil {
		return Comment{}, false
	}
	body, _, ok := obj.str("body")
	if !ok {
		d.invalid("comment", "Comment")
		return Comment{}, false
	}
	if strings.TrimSpace(body) == "" {
		body, _, _ = obj.str("html_body")
	}
	public, ok := obj.boolean("public", true)
	if !ok {
		d.invalid("comment", "Comment")
	}
	author := agent.ID
	if id, set, ok := obj.id("author_id"); set {
		if !ok || s.users[id] == nil {
			d.invalid("comment", "Comment: Author")
		} else if id != 0 {
			author = id
		}
	}
	if strings.TrimSpace(body) == "" {
		return Comment{}, false
	}
	return Comment{AuthorID: author, Body: body, Public: public}, true
}

// applyScalars applies the plain fields of a create or update to t.
func applyScalars(t *Ticket, in fields, d details) {
	if v, set, ok := in.str("subject"); set {
		if !ok {
			d.invalid("subject", "Subject")
		} else {
			t.Subject = v
		}
	}
	if v, set, ok := in.str("external_id"); set {
		if !ok {
			d.invalid("external_id", "External")
		} else {
			t.ExternalID = v
		}
	}
	in.enum(d, "priority", "Priority", priorities, true, &t.Priority)
	in.enum(d, "type", "Type", types, true, &t.Type)
	in.enum(d, "status", "Status", statuses, false, &t.Status)
	if tags, set, ok := in.tagList("tags"); set {
		if !ok {
			d.invalid("tags", "Tags")
		} else {
			t.Tags = tags
		}
	}
	if tags, set, ok := in.tagList("additional_tags"); set {
		if !ok {
			d.invalid("additional_tags", "Tags")
		} else {
			t.Tags = addTags(t.Tags, tags)
		}
	}
	if tags, set, ok := in.tagList("remove_tags"); set {
		if !ok {
			d.invalid("remove_tags", "Tags")
		} else {
			t.Tags = removeTags(t.Tags, tags)
		}
	}
	if cf, set, ok := in.customFields("custom_fields"); set {
		if !ok {
			d.invalid("custom_fields", "Custom fields")
		} else {
			t.CustomFields = mergeCustomFields(t.CustomFields, cf)
		}
	}
}

// mergeCustomFields sets each sent field, keeping the others, as Zendesk
// updates only the custom fields a request names.
func mergeCustomFields(have, set []CustomField) []CustomField {
	out := slices.Clone(have)
	for _, f := range set {
		if i := slices.IndexFunc(out, func(o CustomField) bool { return o.ID == f.ID }); i >= 0 {
			out[i] = f
		} else {
			out = append(out, f)
		}
	}
	return out
}

// parseRequester resolves requester_id or requester {name,email}. It
// returns the requester's id, or a user to create once the ticket is valid;
// with neither given the requester is the agent.
func (s *Server) parseRequester(in fields, d details, agent *User) (int64, *User) {
	if id, set, ok := in.id("requester_id"); set && id != 0 {
		if !ok || s.users[id] == nil {
			d.invalid("requester", "Requester")
			return 0, nil
		}
		return id, nil
	}
	obj, ok := in.object("requester")
	if !ok {
		d.invalid("requester", "Requester")
		return 0, nil
	}
	if obj == nil {
		return agent.ID, nil
	}
	name, _, nameOK := obj.str("name")
	email, _, emailOK := obj.str("email")
	if !nameOK || !emailOK {
		d.invalid("requester", "Requester")
		return 0, nil
	}
	email = strings.TrimSpace(email)
	if email != "" {
		if id, found := s.usersByEmail[strings.ToLower(email)]; found {
			return id, nil
		}
		if !strings.Contains(email, "@") || strings.ContainsAny(email, " \t") {
			d.add("requester", "Requester: Email: "+email+" is not properly formatted", "InvalidFormat")
			return 0, nil
		}
	}
	if strings.TrimSpace(name) == "" {
		d.add("requester", "Requester: Name:  is too short (minimum is 1 character)", "TooShort")
		return 0, nil
	}
	return 0, &User{Name: name, Email: email, Role: "end-user", CreatedAt: s.now().UTC()}
}

// applyAssignment applies group_id and assignee_id: both must exist (the
// assignee as an agent) and the assignee must belong to the group. An
// assignee without a group brings its default group.
func (s *Server) applyAssignment(t *Ticket, in fields, d details) {
	groupID, groupSet, ok := in.id("group_id")
	if groupSet {
		if !ok || (groupID != 0 && s.groups[groupID] == nil) {
			d.invalid("group", "Group")
			return
		}
		t.GroupID = groupID
	}
	assigneeID, assigneeSet, ok := in.id("assignee_id")
	if !assigneeSet {
		if groupSet && t.AssigneeID != 0 && t.GroupID != 0 && !slices.Contains(s.users[t.AssigneeID].GroupIDs, t.GroupID) {
			t.AssigneeID = 0 // moving to another group unassigns, as in Zendesk
		}
		return
	}
	if assigneeID == 0 && ok {
		t.AssigneeID = 0
		return
	}
	a := s.users[assigneeID]
	if !ok || a == nil || !a.isAgent() {
		d.invalid("assignee", "Assignee")
		return
	}
	switch {
	case t.GroupID == 0 && len(a.GroupIDs) > 0:
		t.GroupID = a.GroupIDs[0]
	case t.GroupID != 0 && !slices.Contains(a.GroupIDs, t.GroupID):
		d.add("assignee", "Assignee: is not a member of the group", "")
		return
	}
	t.AssigneeID = assigneeID
}

func (s *Server) updateHandler(c *call, id int64) {
	in, err := ticketFields(c.body)
	if err != nil {
		c.badBody(err)
		return
	}
	out, d := s.updateTicket(in, id, c)
	if d != nil {
		c.recordInvalid(d)
		return
	}
	c.writeJSON(http.StatusOK, out)
}

// updateTicket applies a PUT and returns the answer body, or the validation
// details when nothing was changed.
func (s *Server) updateTicket(in fields, id int64, c *call) ([]byte, details) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.tickets[id]
	if cur.Status == "closed" {
		return nil, closedDetails()
	}
	agent := s.users[c.agent.ID]
	d := details{}
	next := cur.clone()
	comment, hasComment := s.parseComment(in, d, agent)
	applyScalars(&next, in, d)
	requester, newUser := next.RequesterID, (*User)(nil)
	if _, set, _ := in.id("requester_id"); set || (in["requester"] != nil && !isNull(in["requester"])) {
		requester, newUser = s.parseRequester(in, d, agent)
	}
	s.applyAssignment(&next, in, d)
	if len(d) > 0 {
		return nil, d
	}
	if newUser != nil {
		requester = s.addUser(*newUser).ID
	}
	next.RequesterID = requester
	if next.Status == "new" && next.AssigneeID != 0 {
		next.Status = "open"
	}
	if hasComment {
		s.nextComment++
		comment.ID, comment.CreatedAt = s.nextComment, c.now.UTC()
		next.Comments = append(next.Comments, comment)
	}
	next.UpdatedAt = c.now.UTC()
	prev := cur.clone()
	*cur = next
	s.dirtyTickets[cur.ID] = struct{}{}
	s.changed()
	return mustJSON(map[string]any{
		"ticket": renderTicket(cur, c.base()),
		"audit":  s.renderAudit(cur, &prev, agent.ID, c.now),
	}), nil
}

func closedDetails() details {
	d := details{}
	d.add("status", "Status: closed prevents ticket update", "")
	return d
}

// tagsHandler serves /api/v2/tickets/{id}/tags: GET shows, POST sets, PUT
// adds, DELETE removes; all answer the resulting {"tags":[…]}.
func (s *Server) tagsHandler(c *call, id int64) {
	switch c.r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		c.notEmulated()
		return
	}
	var tags []string
	if c.r.Method != http.MethodGet {
		f, err := envelopeTags(c.body)
		if err != nil {
			c.badBody(err)
			return
		}
		tags = f
	}
	out, ok := s.applyTags(c, id, tags)
	if !ok {
		c.recordInvalid(closedDetails())
		return
	}
	c.writeJSON(http.StatusOK, out)
}

// applyTags changes a ticket's tags by method; false means the ticket is
// closed, which the tags endpoints cannot change.
func (s *Server) applyTags(c *call, id int64, tags []string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tickets[id]
	if c.r.Method != http.MethodGet && t.Status == "closed" {
		return nil, false
	}
	switch c.r.Method {
	case http.MethodPost:
		t.Tags = tags
	case http.MethodPut:
		t.Tags = addTags(t.Tags, tags)
	case http.MethodDelete:
		t.Tags = removeTags(t.Tags, tags)
	}
	if c.r.Method != http.MethodGet {
		t.UpdatedAt = c.now.UTC()
		s.dirtyTickets[t.ID] = struct{}{}
		s.changed()
	}
	return mustJSON(map[string]any{"tags": slices.Clone(t.Tags)}), true
}

// envelopeTags reads {"tags":[…]} (or a space-separated string).
func envelopeTags(body []byte) ([]string, error) {
	var env fields
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, errInvalidJSON{err}
	}
	tags, set, ok := env.tagList("tags")
	if !set || !ok {
		return nil, errors.New("param is missing or the value is empty: tags")
	}
	return tags, nil
}

func (s *Server) listComments(c *call, id int64) {
	s.mu.Lock()
	t := s.tickets[id]
	out := make([]commentJSON, len(t.Comments))
	for i, cm := range t.Comments {
		out[i] = renderComment(cm)
	}
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, mustJSON(struct {
		Comments     []commentJSON `json:"comments"`
		NextPage     *string       `json:"next_page"`
		PreviousPage *string       `json:"previous_page"`
		Count        int           `json:"count"`
	}{Comments: out, Count: len(out)}))
}

// listTickets serves GET /api/v2/tickets: all tickets by id ascending,
// filtered by external_id when given; cursor pagination when page[size] is
// present, offset pagination (page, per_page) otherwise.
func (s *Server) listTickets(c *call) {
	q := c.r.URL.Query()
	s.mu.Lock()
	var all []*Ticket
	ext, filter := q["external_id"]
	for _, id := range slices.Sorted(maps.Keys(s.tickets)) {
		t := s.tickets[id]
		if !filter || t.ExternalID == ext[len(ext)-1] {
			all = append(all, t)
		}
	}
	s.mu.Unlock()

	if q.Has("page[size]") || q.Has("page[after]") || q.Has("page[before]") {
		s.cursorPage(c, q, all)
		return
	}
	s.offsetPage(c, q, all)
}

func (s *Server) offsetPage(c *call, q url.Values, all []*Ticket) {
	perPage, page := MaxPageSize, 1
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.jsonError(http.StatusBadRequest, "InvalidPaginationParameter", "per_page must be a positive integer")
			return
		}
		perPage = min(n, MaxPageSize)
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.jsonError(http.StatusBadRequest, "InvalidPaginationParameter", "page must be a positive integer")
			return
		}
		page = n
	}
	start := min((page-1)*perPage, len(all))
	end := min(start+perPage, len(all))
	link := func(p int) *string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(p))
		v.Set("per_page", strconv.Itoa(perPage))
		u := c.base() + "/api/v2/tickets.json?" + bracketed.Replace(v.Encode())
		return &u
	}
	var next, prev *string
	if end < len(all) {
		next = link(page + 1)
	}
	if page > 1 {
		prev = link(page - 1)
	}
	s.mu.Lock()
	out := renderTickets(all[start:end], c.base())
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, mustJSON(struct {
		Tickets      []ticketJSON `json:"tickets"`
		NextPage     *string      `json:"next_page"`
		PreviousPage *string      `json:"previous_page"`
		Count        int          `json:"count"`
	}{out, next, prev, len(all)}))
}

// cursorPage answers a cursor-paginated ticket list: all (sorted by id)
// cut by page[after] or page[before] into at most page[size] tickets, with
// the cursors and links of the neighbouring pages. A bad page[size] or
// cursor, or both cursors at once, is 400 InvalidPaginationParameter.
func (s *Server) cursorPage(c *call, q url.Values, all []*Ticket) {
	size, msg := cursorPageSize(q)
	if msg != "" {
		c.jsonError(http.StatusBadRequest, "InvalidPaginationParameter", msg)
		return
	}
	page, hasMore, msg := cutCursorPage(all, size, q.Get("page[after]"), q.Get("page[before]"))
	if msg != "" {
		c.jsonError(http.StatusBadRequest, "InvalidPaginationParameter", msg)
		return
	}
	m := cursorMeta{HasMore: hasMore}
	var l cursorLinks
	if len(page) > 0 {
		a, b := encodeCursor(page[len(page)-1].ID), encodeCursor(page[0].ID)
		m.AfterCursor, m.BeforeCursor = &a, &b
		l.Next = cursorLink(c.base(), q, size, "page[after]", a)
		l.Prev = cursorLink(c.base(), q, size, "page[before]", b)
	}
	s.mu.Lock()
	out := renderTickets(page, c.base())
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, mustJSON(struct {
		Tickets []ticketJSON `json:"tickets"`
		Meta    cursorMeta   `json:"meta"`
		Links   cursorLinks  `json:"links"`
	}{out, m, l}))
}

// cursorMeta is a cursor-paginated list's "meta": whether more follow and
// the cursors of the page's last and first tickets (null on an empty page).
type cursorMeta struct {
	HasMore      bool    `json:"has_more"`
	AfterCursor  *string `json:"after_cursor"`
	BeforeCursor *string `json:"before_cursor"`
}

// cursorLinks is a cursor-paginated list's "links" to the previous and
// next pages (null on an empty page).
type cursorLinks struct {
	Prev *string `json:"prev"`
	Next *string `json:"next"`
}

// cursorPageSize is q's page[size], MaxPageSize when absent; msg describes
// a value that is not an integer in 1..MaxPageSize.
func cursorPageSize(q url.Values) (size int, msg string) {
	v := q.Get("page[size]")
	if v == "" {
		return MaxPageSize, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, "page[size] must be a positive integer"
	}
	if n > MaxPageSize {
		return 0, fmt.Sprintf("page[size] is limited to %d", MaxPageSize)
	}
	return n, ""
}

// cutCursorPage cuts from all (sorted by id) the size tickets just before
// the before cursor, else just after the after cursor, else the first
// size; hasMore reports tickets left beyond the page in that direction.
// msg describes both cursors given at once or one that does not decode.
func cutCursorPage(all []*Ticket, size int, after, before string) (page []*Ticket, hasMore bool, msg string) {
	if after != "" && before != "" {
		return nil, false, "page[after] and page[before] cannot be used together"
	}
	byID := func(t *Ticket, id int64) int { return cmp.Compare(t.ID, id) }
	if before != "" {
		id, ok := decodeCursor(before)
		if !ok {
			return nil, false, "page[before] is not a valid cursor"
		}
		i, _ := slices.BinarySearchFunc(all, id, byID)
		lo := max(0, i-size)
		return all[lo:i], lo > 0, ""
	}
	i := 0
	if after != "" {
		id, ok := decodeCursor(after)
		if !ok {
			return nil, false, "page[after] is not a valid cursor"
		}
		i, _ = slices.BinarySearchFunc(all, id+1, byID)
	}
	hi := min(len(all), i+size)
	return all[i:hi], hi < len(all), ""
}

// cursorLink is the URL of the ticket list with q's parameters, both
// cursors replaced by key=cursor and page[size] set to size.
func cursorLink(base string, q url.Values, size int, key, cursor string) *string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	v.Del("page[after]")
	v.Del("page[before]")
	v.Set("page[size]", strconv.Itoa(size))
	v.Set(key, cursor)
	u := base + "/api/v2/tickets.json?" + bracketed.Replace(v.Encode())
	return &u
}

// bracketed keeps page[size] readable in links, as Zendesk writes them.
var bracketed = strings.NewReplacer("%5B", "[", "%5D", "]")

// Cursors are opaque to clients; here they wrap the ticket id.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("t:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	v, ok := strings.CutPrefix(string(b), "t:")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(v, 10, 64)
	return id, err == nil
}
