package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `switchyard version` prints. `go build` in a checkout
// stamps the module version and the VCS state into the binary, so no
// -ldflags are needed (in a go.work workspace only with -buildvcs=true,
// which `make build` passes): Version is the module's version ("(devel)"
// unless built from a module version), Commit and Date the commit's hash
// and time, Modified whether the tree had uncommitted changes.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Date     string `json:"date"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

// buildVersion reads the running binary's build information.
func buildVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionInfo{Version: "unknown", Go: runtime.Version()}
	}
	return versionFrom(bi)
}

// versionFrom is versionInfo from build information.
func versionFrom(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: bi.Main.Version, Go: bi.GoVersion}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if v.Go == "" {
		v.Go = runtime.Version()
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Date = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// newVersionCmd is `switchyard version` (and `switchyard --version`).
func newVersionCmd(c *cliIO) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit, build date and Go version",
		Long: `Prints the version, the commit it was built from (with "+modified" when the
tree had uncommitted changes), the commit's date and the Go version, as
'go build' recorded them in the binary.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return printVersion(c.stdout, asJSON) },
	}
	jsonFlag(cmd.Flags(), &asJSON)
	return cmd
}

func printVersion(w io.Writer, asJSON bool) error {
	v := buildVersion()
	if asJSON {
		return writeJSON(w, v)
	}
	commit, date := orDefault(v.Commit, "unknown"), orDefault(v.Date, "unknown")
	if v.Modified {
		commit += "+modified"
	}
	_, err := fmt.Fprintf(w, "switchyard %s\n  commit: %s\n  date:   %s\n  go:     %s\n", v.Version, commit, date, v.Go)
	return err
}
