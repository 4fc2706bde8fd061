package arch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	repo     = "github.com/switchyard/switchyard/"
	proto    = repo + "proto"
	platform = repo + "platform"
	devkit   = repo + "platform/devkit"
	services = repo + "services/"
	cli      = repo + "services/switchyard"
	examples = repo + "docs/examples"
)

// clientLeaves are the last path elements of the service packages the CLI may
// import: the status API's client, the embedded SQL of a service's
// migrations, and the vendor API clients. None may reach PostgreSQL (pgx) or
// another service's packages.
var clientLeaves = map[string]bool{"client": true, "migrations": true, "hubspot": true, "zendesk": true}

// compositionRoot names the CLI files that start every service in one process
// (`switchyard dev`). They must carry the !nodev build constraint, so a
// production build of the CLI links no service and no emulator.
var compositionRoot = map[string]bool{"dev.go": true, "devemulator.go": true}

type pkg struct {
	ImportPath   string
	Dir          string
	Module       *struct{ Path string }
	GoFiles      []string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.work")); err != nil {
		t.Fatalf("repository root not found from %s: %v", dir, err)
	}
	return dir
}

func goList(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json"}, args...)...)
	cmd.Dir = root(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// workspace lists every package of every module in go.work.
func workspace(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Path}}/...")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	pkgs := goList(t, strings.Fields(string(out))...)
	if len(pkgs) < 40 {
		t.Fatalf("only %d packages in the workspace; the listing is wrong", len(pkgs))
	}
	return pkgs
}

func under(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

// service returns the service a package belongs to ("" if none).
func service(path string) string {
	if !strings.HasPrefix(path, services) {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(path, services), "/")
	return name
}

func isClient(path string) bool {
	return service(path) != "" && clientLeaves[path[strings.LastIndex(path, "/")+1:]]
}

func TestImportDirection(t *testing.T) {
	byPath := map[string]pkg{}
	for _, p := range workspace(t) {
		byPath[p.ImportPath] = p
	}
	for _, p := range byPath {
		all := append(append(append([]string{}, p.Deps...), p.TestImports...), p.XTestImports...)
		switch {
		case under(p.ImportPath, proto):
			for _, d := range all {
				if under(d, platform) || strings.HasPrefix(d, services) {
					t.Errorf("%s (proto) imports %s: proto imports nothing of ours", p.ImportPath, d)
				}
			}
		case under(p.ImportPath, devkit):
			for _, d := range all {
				if strings.HasPrefix(d, services) {
					t.Errorf("%s (platform/devkit) imports %s: platform never imports a service", p.ImportPath, d)
				}
			}
		case under(p.ImportPath, platform):
			for _, d := range all {
				switch {
				case strings.HasPrefix(d, services):
					t.Errorf("%s (platform) imports %s: platform never imports a service", p.ImportPath, d)
				case under(d, devkit), strings.HasPrefix(d, "github.com/nats-io/nats-server"):
					t.Errorf("%s (runtime platform) imports %s: runtime packages and their tests stay off the development module (tests that need it live in platform/devkit/integration)", p.ImportPath, d)
				}
			}
		case under(p.ImportPath, examples):
			// What a team outside the hub writes: the contracts, never
			// the hub's own packages.
			for _, d := range all {
				if strings.HasPrefix(d, repo) && !under(d, proto) && !under(d, p.Module.Path) {
					t.Errorf("%s (an example subscriber) imports %s: examples import only the proto module", p.ImportPath, d)
				}
			}
		case service(p.ImportPath) == "switchyard":
			checkCLI(t, p, byPath)
		case service(p.ImportPath) != "":
			own := service(p.ImportPath)
			for _, d := range all {
				if other := service(d); other != "" && other != own {
					t.Errorf("%s imports %s: no service imports another", p.ImportPath, d)
				}
			}
		}
	}
	for path := range byPath {
		if isClient(path) && service(path) != "switchyard" {
			checkClient(t, byPath[path])
		}
	}
}

// checkCLI holds the operator CLI to client packages, file by file: only the
// composition root may start services, and only through their entry packages.
func checkCLI(t *testing.T, p pkg, byPath map[string]pkg) {
	t.Helper()
	for _, name := range p.GoFiles {
		file := filepath.Join(p.Dir, name)
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		root := compositionRoot[name] && p.ImportPath == cli
		for _, imp := range f.Imports {
			d := strings.Trim(imp.Path.Value, `"`)
			other := service(d)
			if other == "" || other == "switchyard" {
				continue
			}
			switch {
			case isClient(d):
			case root && d == services+other:
				// the dev hub starts each service through its entry package
			default:
				t.Errorf("%s imports %s: the CLI uses only client packages of services", file, d)
			}
		}
		if root && !hasConstraint(t, file, "!nodev") {
			t.Errorf("%s starts services but lacks //go:build !nodev: production builds would link them", file)
		}
	}
}

func hasConstraint(t *testing.T, file, want string) bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if strings.HasPrefix(line, "//go:build ") && strings.Contains(line, want) {
			return true
		}
	}
	return false
}

// checkClient keeps the packages the CLI may import small: none imports
// another service or the development module, and the status API's client
// links no database driver.
func checkClient(t *testing.T, p pkg) {
	t.Helper()
	own := service(p.ImportPath)
	for _, d := range p.Deps {
		switch {
		case strings.HasSuffix(p.ImportPath, "/client") && strings.HasPrefix(d, "github.com/jackc/pgx"):
			t.Errorf("client package %s links %s: clients reach the services over HTTP, never the database", p.ImportPath, d)
		case service(d) != "" && service(d) != own:
			t.Errorf("client package %s imports %s", p.ImportPath, d)
		case service(d) == own && !under(d, p.ImportPath):
			t.Errorf("client package %s imports %s: a client imports nothing of its service but itself", p.ImportPath, d)
		case under(d, devkit):
			t.Errorf("client package %s imports %s (development module)", p.ImportPath, d)
		}
	}
}

// TestProductionBinariesLinkNoDevelopmentCode builds the import graph of each
// service binary and of the CLI as production builds it (-tags nodev).
func TestProductionBinariesLinkNoDevelopmentCode(t *testing.T) {
	bins := []string{"./services/switchyard"}
	for _, svc := range []string{"gateway", "identity", "crm", "support", "alerts", "projector"} {
		bins = append(bins, "./services/"+svc+"/cmd/"+svc)
	}
	for _, b := range bins {
		pkgs := goList(t, "-tags", "nodev", "-deps", b)
		if len(pkgs) < 20 {
			t.Fatalf("%s: only %d packages; the listing is wrong", b, len(pkgs))
		}
		for _, p := range pkgs {
			if under(p.ImportPath, devkit) || strings.HasPrefix(p.ImportPath, "github.com/nats-io/nats-server") {
				t.Errorf("%s (production build) links %s", b, p.ImportPath)
			}
		}
	}
}

// TestImagesAreProductionBuilds: the import graph above is the one the
// container images link only if they build with the same tag.
func TestImagesAreProductionBuilds(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "services", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("go build -tags nodev ")) {
		t.Error("services/Dockerfile does not build with -tags nodev: the CLI image would link the dev hub and its emulators")
	}
}

// TestRuntimeModuleRequiresNoServer reads platform/go.mod itself: every
// service requires the runtime module, so whatever it requires lands in every
// service's module graph.
func TestRuntimeModuleRequiresNoServer(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "platform", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"github.com/nats-io/nats-server", "switchyard/platform/devkit"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("platform/go.mod requires %s", bad)
		}
	}
	if !bytes.Contains(b, []byte("github.com/nats-io/nats.go")) {
		t.Error("platform/go.mod does not require nats.go: the check reads the wrong file")
	}
}
