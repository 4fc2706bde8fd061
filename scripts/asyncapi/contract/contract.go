// Package contract renders the hub's machine-readable NATS contract from
// the code that defines it, so the published files cannot drift from what
// the services do:
//
//   - the subject → message type bindings are proto/subjects.All();
//   - the streams and the durable consumers are platform/natsbus's
//     catalogue (Streams, Durables);
//   - the message structure is the generated Go descriptors in proto/gen;
//   - the header names are the constants in proto/wire and
//     platform/consumer.
//
// Comments are not in the generated descriptors (protoc-gen-go drops
// source info), so the .proto sources are compiled here too, only to read
// them; Load refuses to render when the compiled contracts and the
// generated Go code differ in anything but comments.
//
// Two files come out: subjects.json (the bindings, for subscribers in any
// language) and asyncapi.yaml (an AsyncAPI 3.0.0 document). `make proto`
// writes them into proto/; the tests compare them with what is committed.
package contract

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// Stream is a JetStream stream that carries contract subjects.
type Stream struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
}

// Binding is one contract subject and the message type published on it.
type Binding struct {
	// Subject is the exact subject, or `dlq.*` for the dead letters (one
	// type on every dlq.<consumer>).
	Subject string `json:"subject"`
	Stream  string `json:"stream"`
	// Type is the proto full name, also the Switchyard-Type header.
	Type string `json:"type"`
	// File is the .proto file that defines Type, relative to proto/.
	File string `json:"file"`

	desc     protoreflect.MessageDescriptor
	durables []string // durable consumers that read the subject, sorted
}

// Contract is everything the two files say.
type Contract struct {
	Streams  []Stream  `json:"streams"`  // by name
	Subjects []Binding `json:"subjects"` // by subject

	comments map[protoreflect.FullName]string
	durables []string // every durable consumer of the catalogue, sorted
}

// DLQSubject is the dead letters' subject in the contract: one token per
// consumer, dlq.<consumer>.
const DLQSubject = wire.DLQPrefix + "*"

// Load builds the contract from the code, reading comments from the
// .proto files under protoDir (the proto/ folder).
func Load(ctx context.Context, protoDir string) (*Contract, error) {
	streams := natsbus.Streams(natsbus.Options{})
	durables := natsbus.Durables(natsbus.Options{})
	c := &Contract{}
	used := map[string]bool{}
	for _, b := range subjects.All() {
		subject := b.Subject
		if subject == wire.DLQAll {
			subject = DLQSubject
		}
		md := b.Type.Descriptor()
		bd := Binding{Subject: subject, Type: string(md.FullName()), File: md.ParentFile().Path(), desc: md}
		for _, s := range streams {
			for _, f := range s.Subjects {
				if within(subject, f) {
					if bd.Stream != "" && bd.Stream != s.Name {
						return nil, fmt.Errorf("subject %s is captured by two streams, %s and %s", subject, bd.Stream, s.Name)
					}
					bd.Stream = s.Name
				}
			}
		}
		if bd.Stream == "" {
			return nil, fmt.Errorf("subject %s is captured by no stream of natsbus.Streams", subject)
		}
		for _, d := range durables {
			if d.Stream == bd.Stream && (len(d.Subjects) == 0 || slices.ContainsFunc(d.Subjects, func(f string) bool { return within(subject, f) })) &&
				!slices.Contains(bd.durables, d.Name) {
				bd.durables = append(bd.durables, d.Name)
			}
		}
		sort.Strings(bd.durables)
		used[bd.Stream] = true
		c.Subjects = append(c.Subjects, bd)
	}
	for _, s := range streams {
		if used[s.Name] {
			c.Streams = append(c.Streams, Stream{Name: s.Name, Subjects: slices.Clone(s.Subjects)})
		}
	}
	for _, d := range durables {
		if !slices.Contains(c.durables, d.Name) {
			c.durables = append(c.durables, d.Name)
		}
	}
	sort.Strings(c.durables)
	sort.Slice(c.Streams, func(i, j int) bool { return c.Streams[i].Name < c.Streams[j].Name })
	sort.Slice(c.Subjects, func(i, j int) bool { return c.Subjects[i].Subject < c.Subjects[j].Subject })

	var err error
	if c.comments, err = comments(ctx, protoDir); err != nil {
		return nil, err
	}
	return c, nil
}

// within reports whether every subject that pattern matches is also
// matched by filter (NATS wildcards: `*` one token, `>` one or more).
func within(pattern, filter string) bool {
	p, f := strings.Split(pattern, "."), strings.Split(filter, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(p) > i
		}
		if i >= len(p) || p[i] == ">" || (ft != "*" && ft != p[i]) {
			return false
		}
	}
	return len(p) == len(f)
}

// comments compiles every .proto file under protoDir/switchyard, checks
// each against the generated Go descriptor of the same path (they must
// agree in everything but source info), and returns the comment of every
// message, field, enum and enum value by full name.
func comments(ctx context.Context, protoDir string) (map[protoreflect.FullName]string, error) {
	var paths []string
	err := filepath.WalkDir(filepath.Join(protoDir, "switchyard"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".proto" {
			return err
		}
		rel, err := filepath.Rel(protoDir, p)
		paths = append(paths, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find .proto files: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no .proto files under %s", filepath.Join(protoDir, "switchyard"))
	}
	sort.Strings(paths)
	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{protoDir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := compiler.Compile(ctx, paths...)
	if err != nil {
		return nil, fmt.Errorf("compile contracts: %w", err)
	}
	out := map[protoreflect.FullName]string{}
	for _, f := range files {
		if err := sameAsGenerated(f); err != nil {
			return nil, err
		}
		collect(f, out)
	}
	return out, nil
}

// ErrStale means the generated Go code is not the code of the .proto files.
var ErrStale = errors.New("generated Go code in proto/gen differs from the .proto files (run make proto)")

func sameAsGenerated(f linker.File) error {
	gen, err := protoregistry.GlobalFiles.FindFileByPath(f.Path())
	if err != nil {
		return fmt.Errorf("%s: no generated Go code is linked for it: %w", f.Path(), ErrStale)
	}
	want, got := normalise(protodesc.ToFileDescriptorProto(gen)), normalise(protodesc.ToFileDescriptorProto(f))
	if !proto.Equal(want, got) {
		return fmt.Errorf("%s: %w", f.Path(), ErrStale)
	}
	return nil
}

// normalise drops what one compiler fills in and another may not: source
// info, json_name (derived from the name) and unknown fields.
func normalise(fd *descriptorpb.FileDescriptorProto) *descriptorpb.FileDescriptorProto {
	fd.SourceCodeInfo = nil
	var clear func(m protoreflect.Message)
	clear = func(m protoreflect.Message) {
		m.SetUnknown(nil)
		if f, ok := m.Interface().(*descriptorpb.FieldDescriptorProto); ok {
			f.JsonName = nil
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					clear(v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsMap():
				clear(v.Message())
			}
			return true
		})
	}
	clear(fd.ProtoReflect())
	return fd
}

// collect stores the comment of every declaration in f.
func collect(f protoreflect.FileDescriptor, out map[protoreflect.FullName]string) {
	locs := f.SourceLocations()
	add := func(d protoreflect.Descriptor) {
		if text := commentText(locs.ByDescriptor(d)); text != "" {
			out[d.FullName()] = text
		}
	}
	enums := func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			add(e)
			for j := range e.Values().Len() {
				add(e.Values().Get(j))
			}
		}
	}
	var messages func(ms protoreflect.MessageDescriptors)
	messages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			add(m)
			for j := range m.Fields().Len() {
				add(m.Fields().Get(j))
			}
			enums(m.Enums())
			messages(m.Messages())
		}
	}
	enums(f.Enums())
	messages(f.Messages())
}

// commentText is a declaration's leading comment (else its trailing one),
// without the comment markers' indentation.
func commentText(l protoreflect.SourceLocation) string {
	raw := l.LeadingComments
	if strings.TrimSpace(raw) == "" {
		raw = l.TrailingComments
	}
	lines := strings.Split(strings.TrimRight(raw, "\n "), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRight(strings.TrimPrefix(line, " "), " \t")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// Comment returns the .proto comment of a declaration, "" if none.
func (c *Contract) Comment(name protoreflect.FullName) string { return c.comments[name] }

// WriteFiles writes subjects.json and asyncapi.yaml into dir.
func (c *Contract) WriteFiles(dir string) error {
	files, err := c.Render()
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Render returns the two files by name.
func (c *Contract) Render() (map[string][]byte, error) {
	js, err := c.SubjectsJSON()
	if err != nil {
		return nil, fmt.Errorf("render subjects.json: %w", err)
	}
	ya, err := c.AsyncAPI()
	if err != nil {
		return nil, fmt.Errorf("render asyncapi.yaml: %w", err)
	}
	return map[string][]byte{SubjectsFile: js, AsyncAPIFile: ya}, nil
}

// The files' names in proto/.
const (
	SubjectsFile = "subjects.json"
	AsyncAPIFile = "asyncapi.yaml"
)
