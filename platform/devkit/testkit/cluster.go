package testkit

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
)

var (
	cluster    *pgcluster.Cluster
	clusterDir string
)

// Main runs the tests and then stops the private PostgreSQL cluster if one
// was started. Packages that use Postgres call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testkit:", err)
		}
		_ = os.RemoveAll(clusterDir)
	}
	return code
}

// privateCluster starts a throwaway server for this test process in a
// temporary directory that the postgres user can reach.
func privateCluster(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "switchyard-pg-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	c, err := pgcluster.Start(ctx, dir+"/data", 0, os.Getenv)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("no server at DATABASE_URL or 127.0.0.1:5432, and a private cluster failed: %w", err)
	}
	cluster, clusterDir = c, dir
	return c.URL("postgres"), nil
}
