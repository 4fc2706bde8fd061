package zendesk

import (
	"net/http"
	"strconv"
)

// userJSON is the part of Zendesk's user object the emulator models, in
// Zendesk's field order; the anonymous user has null id, url, email and
// timestamps.
type userJSON struct {
	ID             *int64  `json:"id"`
	URL            *string `json:"url"`
	Name           string  `json:"name"`
	Email          *string `json:"email"`
	CreatedAt      *string `json:"created_at"`
	UpdatedAt      *string `json:"updated_at"`
	Active         bool    `json:"active"`
	Verified       bool    `json:"verified"`
	Role           string  `json:"role"`
	DefaultGroupID *int64  `json:"default_group_id"`
	Suspended      bool    `json:"suspended"`
}

func renderUser(u User, base string) userJSON {
	url := base + "/api/v2/users/" + strconv.FormatInt(u.ID, 10) + ".json"
	created := ts(u.CreatedAt)
	var group int64
	if len(u.GroupIDs) > 0 {
		group = u.GroupIDs[0]
	}
	return userJSON{
		ID: &u.ID, URL: &url, Name: u.Name, Email: optString(u.Email),
		CreatedAt: &created, UpdatedAt: &created,
		Active: true, Verified: true, Role: u.Role, DefaultGroupID: optID(group),
	}
}

// anonymousUser is what GET /api/v2/users/me answers to a request that
// sends no credentials at all: Zendesk allows the endpoint to anonymous
// callers, so a 200 alone proves nothing about a token.
var anonymousUser = userJSON{Name: "Anonymous user", Role: "end-user"}

// showSelf answers GET /api/v2/users/me: the user the credentials belong
// to (the API agent), or the anonymous user.
func (s *Server) showSelf(c *call, anonymous bool) {
	if c.r.Method != http.MethodGet {
		c.notEmulated()
		return
	}
	u := anonymousUser
	if !anonymous {
		u = renderUser(c.agent, c.base())
	}
	c.writeJSON(http.StatusOK, mustJSON(struct {
		User userJSON `json:"user"`
	}{u}))
}

// isSelf reports whether the request is for GET /api/v2/users/me.
func isSelf(r *http.Request) bool {
	p := r.URL.Path
	return p == "/api/v2/users/me" || p == "/api/v2/users/me.json"
}
