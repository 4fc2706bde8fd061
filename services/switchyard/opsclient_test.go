package main

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/services/projector/client"
)

// testOpsClient calls status API paths directly, for tests that read
// documents the CLI has no command for.
type testOpsClient struct{ *client.Client }

func newOpsClient(base, token string, timeout time.Duration) testOpsClient {
	return testOpsClient{client.New(base, token, timeout)}
}

// do sends a request without a body and decodes a 200 answer into v.
func (c testOpsClient) do(ctx context.Context, method, path string, v any) error {
	return c.Do(ctx, method, path, nil, v)
}
