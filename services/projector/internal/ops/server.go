package ops

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// Server is the operator surface on the ops address: the status API and
// the console, served from one route table (routes.go).
type Server struct {
	api     *API
	console *Console
}

// New returns the operator surface of the projection in c.Store.
func New(ctx context.Context, c ConsoleConfig) (*Server, error) {
	console, err := NewConsole(ctx, c)
	if err != nil {
		return nil, err
	}
	rebuild := func(ctx context.Context) (view.RebuildReport, error) {
		who, _ := PrincipalFrom(ctx)
		return console.Rebuild(ctx, who.Name)
	}
	digest := func(ctx context.Context) Digest { return GatherDigest(ctx, c.JetStream, c.Store, console.dlq) }
	api := NewAPI(c.Store, c.Tokens, rebuild, console.gatherOverview, digest, c.Logger).
		WithDeadLetters(console).WithLinker(console).WithAuthLimiter(console)
	return &Server{api: api, console: console}, nil
}

// RebuildFailed records why the rebuild to the current view version
// failed: the overview and `switchyard status` say so.
func (s *Server) RebuildFailed(why string) { s.console.rebuildFailed.Store(&why) }

// Rebuild rebuilds the projection from the streams (view.Rebuild),
// recorded in the ops audit log under actor: what POST /v1/rebuild does,
// and `projector rebuild --direct`.
func (c *Console) Rebuild(ctx context.Context, actor string) (rep view.RebuildReport, err error) {
	err = c.Audit(ctx, actor, "rebuild", "projection", func() (string, error) {
		rep, err = view.Rebuild(ctx, c.pool, c.js, c.log)
		return fmt.Sprintf("%d events, %d customers, %.0f events/s", rep.Events, rep.Customers, rep.EventsPerSecond), err
	})
	return rep, err
}
