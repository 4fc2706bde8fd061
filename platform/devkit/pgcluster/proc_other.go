//go:build !linux

package pgcluster

import (
	"context"
	"os/exec"
	"syscall"
)

// startTied starts cmd and returns a channel that gets cmd.Wait's result.
// Only Linux can tie a child's life to its parent's (Pdeathsig): elsewhere
// a server outlives a starter killed with SIGKILL.
func startTied(cmd *exec.Cmd, _ syscall.Signal) (chan error, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done, nil
}

// serverProcs finds no processes outside Linux (no /proc to read).
func serverProcs(string) []int { return nil }

// reclaim leaves a stale postmaster.pid to PostgreSQL outside Linux: it
// removes one whose pid is gone, and refuses to start while it runs.
func reclaim(context.Context, string) error { return nil }
