package projector

import "embed"

// migrations are the projector's own tables that are not derived from the
// streams and so survive a rebuild (the ops audit log).
//
//go:embed migrations/*.sql
var migrations embed.FS
