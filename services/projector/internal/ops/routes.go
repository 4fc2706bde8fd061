package ops

import (
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/platform/service"
)

// Route is one endpoint of the ops address: a status API route
// (documented in openapi.json) or a console page.
type Route struct {
	Pattern string // "METHOD /path", as http.ServeMux reads it
	// Scope is the ops token scope a status API route requires ("" for
	// none: the OpenAPI document and the catch-all).
	Scope string
	// Console marks a console page: the console's security headers on
	// every answer, and a session (page) or none (login, redirects).
	Console bool
	// Operate marks a console page that changes something: it needs an
	// operate-scoped session and the session's CSRF token.
	Operate bool

	api  func(*API, http.ResponseWriter, *http.Request)     // a status API route
	page func(*Console, *request)                           // a console page behind a session
	form func(*Console, http.ResponseWriter, *http.Request) // a console page without one
}

// InOpenAPI reports whether the route is a status API operation, which
// openapi.json documents (the catch-all and console pages are not).
func (r Route) InOpenAPI() bool { return !r.Console && strings.Contains(r.Pattern, " ") }

// routes is the ops address's one route table: the process's route table
// (Server.ServiceRoutes) and the OpenAPI test both read it.
var routes = []Route{
	{Pattern: "GET /v1/openapi.json", api: (*API).openAPI},
	{Pattern: "GET /v1/customers/{id}", Scope: opsauth.ScopeRead, api: (*API).getCustomer},
	{Pattern: "GET /v1/customers", Scope: opsauth.ScopeRead, api: (*API).findCustomers},
	{Pattern: "GET /v1/customers/{id}/timeline", Scope: opsauth.ScopeRead, api: (*API).timeline},
	{Pattern: "POST /v1/rebuild", Scope: opsauth.ScopeOperate, api: (*API).postRebuild},
	{Pattern: "GET /v1/status", Scope: opsauth.ScopeRead, api: (*API).getStatus},
	{Pattern: "GET /v1/digest", Scope: opsauth.ScopeRead, api: (*API).getDigest},
	{Pattern: "GET /v1/unlinked", Scope: opsauth.ScopeRead, api: (*API).getUnlinked},
	{Pattern: "POST /v1/customers/{id}/link", Scope: opsauth.ScopeOperate, api: (*API).postLink},
	{Pattern: "POST /v1/dead-letters/{seq}/replay", Scope: opsauth.ScopeOperate, api: (*API).deadLetterAction},
	{Pattern: "POST /v1/dead-letters/{seq}/discard", Scope: opsauth.ScopeOperate, api: (*API).deadLetterAction},
	{Pattern: "/", api: (*API).notFound},

	{Pattern: "GET /{$}", Console: true, form: (*Console).toConsole},
	{Pattern: "GET /console", Console: true, form: (*Console).toConsole},
	{Pattern: "GET /login", Console: true, form: (*Console).loginPage},
	{Pattern: "POST /login", Console: true, form: (*Console).login},
	{Pattern: "POST /logout", Console: true, page: (*Console).logout},
	{Pattern: "GET /console/{$}", Console: true, page: (*Console).overview},
	{Pattern: "GET /console/failures", Console: true, page: (*Console).failuresPage},
	{Pattern: "GET /console/failures/{seq}", Console: true, page: (*Console).failurePage},
	{Pattern: "POST /console/failures/{seq}/dry-run", Console: true, Operate: true, page: (*Console).dryRun},
	{Pattern: "POST /console/failures/{seq}/replay", Console: true, Operate: true, page: (*Console).replay},
	{Pattern: "POST /console/failures/{seq}/discard", Console: true, Operate: true, page: (*Console).discard},
	{Pattern: "GET /console/customers", Console: true, page: (*Console).search},
	{Pattern: "GET /console/customers/{id}", Console: true, page: (*Console).customerPage},
	{Pattern: "GET /console/unlinked", Console: true, page: (*Console).unlinkedPage},
	{Pattern: "POST /console/unlinked/{id}/link", Console: true, Operate: true, page: (*Console).linkAction},
	{Pattern: "GET /console/audit", Console: true, page: (*Console).auditPage},
	{Pattern: "GET /console/", Console: true, page: (*Console).notFound},
}

// consoleMounts are where the console's pages hang on the address's mux.
var consoleMounts = []string{"/{$}", "/login", "/logout", "/console", "/console/"}

// Routes returns the route table.
func Routes() []Route { return append([]Route(nil), routes...) }

// Listener names the ops address in the projector's route table
// (service.Route.Listener): none of the shared rows name it, so the ops
// address serves the rows of ServiceRoutes alone — no liveness, readiness
// or metrics (those are on PROJECTOR_ADDR); /healthz here is the status
// API's 404.
const Listener = "ops"

// ServiceRoutes returns the route table as rows of the process's route
// table, all on Listener, for service.Mux to serve. A status API route
// that needs a scope is wrapped in its token check (and the auth
// throttle). Console pages are served by a mux of their own, wrapped once
// in withSecurityHeaders and mounted at each of consoleMounts, so every
// console response — the login form and its answers, redirects, errors,
// the mux's own 404 and 405 — carries the same security headers, and a
// page added later cannot forget them.
func (s *Server) ServiceRoutes() []service.Route {
	var rows []service.Route
	row := func(pattern string, h http.Handler) {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			method, path = "", pattern
		}
		rows = append(rows, service.Route{Listener: Listener, Method: method, Path: path, Handler: h})
	}
	pages := http.NewServeMux()
	for _, r := range routes {
		switch {
		case r.page != nil:
			pages.Handle(r.Pattern, s.console.page(r.Operate, func(req *request) { r.page(s.console, req) }))
		case r.form != nil:
			pages.HandleFunc(r.Pattern, func(w http.ResponseWriter, req *http.Request) { r.form(s.console, w, req) })
		case r.Scope != "":
			row(r.Pattern, s.api.auth(r.Scope, func(w http.ResponseWriter, req *http.Request) { r.api(s.api, w, req) }))
		default:
			row(r.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.api(s.api, w, req) }))
		}
	}
	h := withSecurityHeaders(pages)
	for _, pattern := range consoleMounts {
		row(pattern, h)
	}
	return rows
}
