package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A scan that finds almost nothing (a moved folder, a renamed Reader
// method) must fail rather than write an empty document.
func TestRunRefusesATreeWithoutConfig(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"services", "platform"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := run([]string{"-root", root}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "found 0 variables") {
		t.Fatalf("run on an empty tree: err = %v, want found 0 variables", err)
	}
}
