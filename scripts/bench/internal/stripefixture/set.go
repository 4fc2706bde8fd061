package stripefixture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// skippedInDir are the JSON files of a fixture directory that are not
// events: the assembly manifest and the signature test vectors.
var skippedInDir = []string{"MANIFEST.json", "signatures.json"}

// Set is an ordered list of templates sent round-robin: sequence number seq
// uses template seq mod Len. All templates share one run prefix, so the ids
// of a run are unique across the whole set, not just per template. It is
// safe for concurrent use.
type Set struct {
	templates []*Template
	paths     []string
}

// LoadSet reads the templates named by spec, a comma-separated list of
// fixture files and directories. A directory contributes every *.json in it,
// sorted by name, except MANIFEST.json and signatures.json. Every file must
// be a Stripe event (see Parse), and no two may share an event id.
func LoadSet(spec string) (*Set, error) {
	var paths []string
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("fixture list %q has an empty entry", spec)
		}
		expanded, err := expand(entry)
		if err != nil {
			return nil, err
		}
		paths = append(paths, expanded...)
	}
	s := &Set{paths: paths}
	ids := make(map[string]string, len(paths)) // event id → path
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read fixture: %w", err)
		}
		t, err := Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if prev, dup := ids[t.origID]; dup {
			return nil, fmt.Errorf("%s: event id %s already used by %s", p, t.origID, prev)
		}
		ids[t.origID] = p
		if len(s.templates) > 0 {
			t.runPrefix = s.templates[0].runPrefix
		}
		s.templates = append(s.templates, t)
	}
	return s, nil
}

// expand returns path itself if it is a file, or the event fixtures in it if
// it is a directory.
func expand(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	matches, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("fixture directory %s: %w", path, err)
	}
	var files []string
	for _, m := range matches {
		if slices.Contains(skippedInDir, filepath.Base(m)) {
			continue
		}
		if fi, err := os.Stat(m); err != nil {
			return nil, fmt.Errorf("fixture: %w", err)
		} else if fi.IsDir() {
			continue
		}
		files = append(files, m)
	}
	if len(files) == 0 {
		return nil, errors.New("fixture directory " + path + " holds no *.json events")
	}
	slices.Sort(files) // Glob sorts already; the order is part of the contract
	return files, nil
}

// Len is the number of templates.
func (s *Set) Len() int { return len(s.templates) }

// Paths are the fixture files in round-robin order.
func (s *Set) Paths() []string { return slices.Clone(s.paths) }

// Index is the index of the template that sequence number seq uses:
// seq mod Len.
func (s *Set) Index(seq uint64) int { return int(seq % uint64(len(s.templates))) }

// For returns the template that sequence number seq uses, the one at Index.
func (s *Set) For(seq uint64) *Template { return s.templates[s.Index(seq)] }

// MeanBody is the mean body size in bytes over one round of the set, which
// is what a run sends on average (exactly, when its request count is a
// multiple of Len).
func (s *Set) MeanBody() float64 {
	total := 0
	for _, t := range s.templates {
		total += t.BodyLen()
	}
	return float64(total) / float64(len(s.templates))
}
