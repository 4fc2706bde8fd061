package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/scripts/asyncapi/contract"
)

// protoDir is the repository's proto/ folder.
const protoDir = "../../../proto"

func load(t *testing.T, dir string) *contract.Contract {
	t.Helper()
	c, err := contract.Load(context.Background(), dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return c
}

// TestSubjectsJSONMatchesBindings reads the committed proto/subjects.json
// and checks it against subjects.All() and the stream catalogue itself,
// not against the generator: every binding is there once with its type,
// file and stream, and nothing else is.
func TestSubjectsJSONMatchesBindings(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(protoDir, contract.SubjectsFile))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Streams []struct {
			Name     string   `json:"name"`
			Subjects []string `json:"subjects"`
		} `json:"streams"`
		Subjects []struct {
			Subject, Stream, Type, File string
		} `json:"subjects"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("proto/subjects.json: %v", err)
	}

	streamOf := map[string]string{} // stream subject filter -> name, from the catalogue
	for _, s := range natsbus.Streams(natsbus.Options{}) {
		for _, subj := range s.Subjects {
			streamOf[subj] = s.Name
		}
	}
	listed := map[string][]string{}
	for _, s := range got.Streams {
		listed[s.Name] = s.Subjects
		for _, subj := range s.Subjects {
			if streamOf[subj] != s.Name {
				t.Errorf("stream %s lists %q; natsbus.Streams has it on %q", s.Name, subj, streamOf[subj])
			}
		}
	}

	type entry struct{ stream, typ, file string }
	want := map[string]entry{}
	for _, b := range subjects.All() {
		subject, prefix := b.Subject, b.Subject
		if b.Subject == wire.DLQAll {
			subject = contract.DLQSubject
		}
		if i := strings.Index(prefix, "."); i > 0 {
			prefix = prefix[:i]
		}
		want[subject] = entry{streamOf[prefix+".>"], string(b.Type.Descriptor().FullName()), b.Type.Descriptor().ParentFile().Path()}
	}
	seen := map[string]bool{}
	for _, s := range got.Subjects {
		w, ok := want[s.Subject]
		switch {
		case !ok:
			t.Errorf("proto/subjects.json lists %s, which subjects.All() does not bind (run make proto)", s.Subject)
		case seen[s.Subject]:
			t.Errorf("proto/subjects.json lists %s twice", s.Subject)
		case (entry{s.Stream, s.Type, s.File}) != w:
			t.Errorf("proto/subjects.json: %s = %s %s in %s, want %s %s in %s (run make proto)", s.Subject, s.Stream, s.Type, s.File, w.stream, w.typ, w.file)
		}
		if _, ok := listed[s.Stream]; !ok {
			t.Errorf("%s is on stream %s, which the streams list lacks", s.Subject, s.Stream)
		}
		seen[s.Subject] = true
	}
	for subject := range want {
		if !seen[subject] {
			t.Errorf("proto/subjects.json lacks %s (run make proto)", subject)
		}
	}
}

// TestCommittedFilesAreCurrent renders both files and compares them with
// what is committed in proto/, so `make test` catches a stale contract
// even where `make proto` was not run.
func TestCommittedFilesAreCurrent(t *testing.T) {
	t.Parallel()
	files, err := load(t, protoDir).Render()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(protoDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("proto/%s is stale: run make proto and commit the result", name)
		}
	}
	again, err := load(t, protoDir).Render()
	if err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if !bytes.Equal(files[name], again[name]) {
			t.Errorf("%s: two renderings differ; generation must be deterministic", name)
		}
	}
}

// TestAsyncAPIDescribesEveryBinding reads the rendered document as a
// subscriber's tool would: a channel per subject with its address, the
// bound message (name = proto full name, Switchyard-Type const) and a
// receive operation; field comments and numbers reach the schemas.
func TestAsyncAPIDescribesEveryBinding(t *testing.T) {
	t.Parallel()
	c := load(t, protoDir)
	raw, err := c.AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AsyncAPI string `yaml:"asyncapi"`
		Channels map[string]struct {
			Address  string                    `yaml:"address"`
			Messages map[string]map[string]any `yaml:"messages"`
		} `yaml:"channels"`
		Operations map[string]struct {
			Action  string            `yaml:"action"`
			Channel map[string]string `yaml:"channel"`
		} `yaml:"operations"`
		Components struct {
			Messages map[string]struct {
				Name    string `yaml:"name"`
				Headers struct {
					AllOf []map[string]any `yaml:"allOf"`
				} `yaml:"headers"`
			} `yaml:"messages"`
			Schemas map[string]struct {
				Properties map[string]map[string]any `yaml:"properties"`
				Required   []string                  `yaml:"required"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi = %q, want 3.0.0", doc.AsyncAPI)
	}
	if len(doc.Channels) != len(subjects.All()) || len(doc.Operations) != len(subjects.All()) {
		t.Errorf("%d channels and %d operations for %d bindings", len(doc.Channels), len(doc.Operations), len(subjects.All()))
	}
	byAddress := map[string]string{}
	for key, ch := range doc.Channels {
		byAddress[ch.Address] = key
	}
	for _, b := range subjects.All() {
		address, typ := b.Subject, string(b.Type.Descriptor().FullName())
		if b.Subject == wire.DLQAll {
			address = wire.DLQPrefix + "{consumer}"
		}
		key, ok := byAddress[address]
		if !ok {
			t.Errorf("no channel with address %s", address)
			continue
		}
		if _, ok := doc.Channels[key].Messages[typ]; !ok {
			t.Errorf("channel %s does not carry %s", address, typ)
		}
		op := doc.Operations["receive."+key]
		if op.Action != "receive" || op.Channel["$ref"] != "#/channels/"+key {
			t.Errorf("operation receive.%s = %+v, want receive on #/channels/%s", key, op, key)
		}
		m := doc.Components.Messages[typ]
		if m.Name != typ {
			t.Errorf("message %s has name %q", typ, m.Name)
		}
		last := m.Headers.AllOf[len(m.Headers.AllOf)-1]
		props, _ := last["properties"].(map[string]any)
		th, _ := props[wire.HeaderType].(map[string]any)
		if th["const"] != typ {
			t.Errorf("message %s: %s header const = %v", typ, wire.HeaderType, th["const"])
		}
	}
	if req := doc.Components.Schemas["Headers.Event"].Required; len(req) != 1 || req[0] != wire.HeaderMsgID {
		t.Errorf("event headers require %v, want [%s]", req, wire.HeaderMsgID)
	}
	// A field's comment and number from billing.proto.
	f := doc.Components.Schemas["switchyard.billing.v1.PaymentFailed"].Properties["failure_code"]
	if f["x-protobuf-field-number"] != 11 || !strings.Contains(f["description"].(string), "card_declined") {
		t.Errorf("PaymentFailed.failure_code = %v, want field 11 with its .proto comment", f)
	}
}

// TestLoadRefusesStaleGeneratedCode renames a field in a copy of the
// .proto files: the compiled contracts then differ from the generated Go
// code linked into the generator, and Load must refuse rather than
// publish comments for fields that are not there.
func TestLoadRefusesStaleGeneratedCode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := filepath.WalkDir(filepath.Join(protoDir, "switchyard"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(protoDir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, "billing.proto") {
			renamed := bytes.Replace(data, []byte("string failure_code = 11;"), []byte("string failure_reason_code = 11;"), 1)
			if bytes.Equal(renamed, data) {
				t.Fatal("billing.proto has no `string failure_code = 11;` to rename; update the test")
			}
			data = renamed
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contract.Load(context.Background(), dir); !errors.Is(err, contract.ErrStale) {
		t.Fatalf("Load with a renamed field = %v, want ErrStale", err)
	}
}
