// Command configdoc writes docs/configuration.md from the config code: every
// environment variable a service or command reads, found by parsing the Go
// source (never importing it). `make docs` runs it; scripts/lint.sh checks
// that the committed file is what it prints.
//
//	go run ./scripts/configdoc [-root .] [-w docs/configuration.md]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/switchyard/switchyard/scripts/configdoc/scan"
)

// minVars guards against a scan that silently finds nothing (a renamed
// Reader method, a moved folder): the hub reads far more than this.
const minVars = 20

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("configdoc", flag.ContinueOnError)
	root := fs.String("root", ".", "the repository root")
	out := fs.String("w", "", "write to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sections, err := scan.Scan(os.DirFS(*root), "services", "platform")
	if err != nil {
		return err
	}
	if n := scan.Count(sections); n < minVars {
		return fmt.Errorf("found %d variables, want at least %d: has the config code moved or the Reader changed?", n, minVars)
	}
	for _, s := range sections {
		for _, v := range s.Vars {
			if v.Description == "" {
				fmt.Fprintf(stderr, "configdoc: %s in %s has no comment: add one next to its read\n", v.Name, s.Title)
			}
		}
	}
	var buf bytes.Buffer
	if err := scan.Render(&buf, sections); err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}
