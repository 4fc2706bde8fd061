// Package scan finds the environment variables the hub reads by parsing its
// Go source with go/parser, never importing it.
//
// A read is a call on a platform/config Reader (r.String("NAME", def),
// r.Duration, r.Int, r.Secret, …) or a raw getenv("NAME") / os.Getenv("NAME")
// whose name is a string constant. Helpers that take a *config.Reader
// (natsbus.OptionsFromEnv, consumer.RetryFromEnv, …) are followed into the
// services that call them, with names and defaults passed as arguments
// substituted, so each service's table lists everything it reads.
//
// A variable's description is the comment nearest its read: a comment on the
// line of the call or the line above it, else its line in the enclosing
// function's doc (an indented "NAME  description" table), else the comment of
// the struct field it is assigned to, else what the same variable is
// described as elsewhere.
package scan

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// modulePrefix is the import path prefix of the repository's modules; an
// import path under it maps to the folder of the same name.
const modulePrefix = "github.com/switchyard/switchyard/"

// Var is one environment variable as one service or command reads it.
type Var struct {
	Name        string
	Kind        string   // from the Reader method: string, duration, secret, …
	Default     string   // the default argument's value or expression text; "" when none
	Required    bool     // read with Reader.Required
	Secret      bool     // a secret: NAME_FILE is accepted too
	Files       []string // where it is read (slash paths from the root)
	Description string
}

// Section is what one service, command or shared package reads.
type Section struct {
	Title string // "gateway", "switchyard dev", "platform/telemetry"
	Dir   string // the folder the reads are attributed to
	Vars  []Var  // sorted by name
}

// Count returns the number of distinct variable names in sections.
func Count(sections []Section) int {
	names := map[string]bool{}
	for _, s := range sections {
		for _, v := range s.Vars {
			names[v.Name] = true
		}
	}
	return len(names)
}

// readerMethods maps the config.Reader methods that read a variable to the
// kind the documentation shows.
var readerMethods = map[string]string{
	"String":     "string",
	"Required":   "string",
	"OneOf":      "one of",
	"Int":        "integer",
	"Duration":   "duration",
	"Bool":       "boolean",
	"List":       "list",
	"Secret":     "secret",
	"SecretList": "secret list",
}

// kindRank orders kinds when one variable is read several ways: the most
// specific wins (a secret over a string, a duration over a raw read).
var kindRank = map[string]int{"raw": 0, "String": 1, "Required": 2, "List": 3, "OneOf": 3, "Int": 3, "Duration": 3, "Bool": 3, "Secret": 4, "SecretList": 4}

type pkg struct {
	dir     string
	files   []*file
	consts  map[string]string // package-level constants: name → value (unquoted for strings)
	strs    map[string]bool   // which consts are string literals
	structs map[string]*ast.StructType
}

type file struct {
	path    string
	src     []byte
	ast     *ast.File
	imports map[string]string // local name → import path
	config  string            // local name of platform/config, "" when not imported
}

// value is an argument as the scanner sees it.
type value struct {
	str   string // the constant string, when konst
	konst bool
	text  string // the expression's source text
	param int    // index of the enclosing function's parameter it names, or -1
}

type read struct {
	name   value
	method string // a Reader method, or "raw"
	def    value
	hasDef bool
	extra  []value // OneOf's allowed values, Int's bounds
	desc   string
	file   string
	fn     *fn
}

type call struct {
	target string // dir + "." + function name
	args   []value
	desc   string // the comment at the call
}

type fn struct {
	key    string
	pkg    *pkg
	file   *file
	decl   *ast.FuncDecl
	helper bool // takes a *config.Reader: followed into its callers
	reads  []read
	calls  []call
}

type scanner struct {
	fset  *token.FileSet
	pkgs  map[string]*pkg
	funcs map[string]*fn
	order []*fn
}

// Scan parses every non-test Go file under roots in fsys and returns one
// section per service, switchyard command and platform package that reads
// the environment.
func Scan(fsys fs.FS, roots ...string) ([]Section, error) {
	s := &scanner{fset: token.NewFileSet(), pkgs: map[string]*pkg{}, funcs: map[string]*fn{}}
	for _, root := range roots {
		if err := s.load(fsys, root); err != nil {
			return nil, err
		}
	}
	dirs := make([]string, 0, len(s.pkgs))
	for d := range s.pkgs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		for _, f := range s.pkgs[d].files {
			s.collect(s.pkgs[d], f)
		}
	}
	return s.sections(), nil
}

// load parses every non-test Go file under root into s.pkgs, skipping
// hidden, underscore, testdata and vendor folders and platform/config.
func (s *scanner) load(fsys fs.FS, root string) error {
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(p, root, d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		return s.loadFile(fsys, p)
	})
}

// skipDir reports whether load skips the folder p (named name) under root.
func skipDir(p, root, name string) bool {
	if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
		return true
	}
	// The Reader's own methods read names they are given.
	return p == "platform/config"
}

// loadFile parses the Go file p and adds it, its imports and its
// package-level constants and struct types to its folder's package.
func (s *scanner) loadFile(fsys fs.FS, p string) error {
	src, err := fs.ReadFile(fsys, p)
	if err != nil {
		return err
	}
	af, err := parser.ParseFile(s.fset, p, src, parser.ParseComments)
	if err != nil {
		return err
	}
	pk := s.pkgFor(path.Dir(p))
	f := &file{path: p, src: src, ast: af, imports: map[string]string{}}
	for _, im := range af.Imports {
		ip, _ := strconv.Unquote(im.Path.Value)
		local := importName(im, ip)
		f.imports[local] = ip
		if strings.HasSuffix(ip, "/platform/config") {
			f.config = local
		}
	}
	pk.files = append(pk.files, f)
	for _, decl := range af.Decls {
		if gd, ok := decl.(*ast.GenDecl); ok {
			s.declare(pk, f, gd)
		}
	}
	return nil
}

// pkgFor returns the package of folder dir, adding an empty one first.
func (s *scanner) pkgFor(dir string) *pkg {
	pk := s.pkgs[dir]
	if pk == nil {
		pk = &pkg{dir: dir, consts: map[string]string{}, strs: map[string]bool{}, structs: map[string]*ast.StructType{}}
		s.pkgs[dir] = pk
	}
	return pk
}

// importName is the name a file uses for the import im of path ip: its
// explicit name, else the path's last element, skipping a major version
// suffix (stripe-go/v76 is stripe).
func importName(im *ast.ImportSpec, ip string) string {
	if im.Name != nil {
		return im.Name.Name
	}
	local := path.Base(ip)
	if strings.HasPrefix(local, "v") && len(local) <= 3 { // stripe-go/v76
		local = path.Base(path.Dir(ip))
	}
	return local
}

// declare records gd's constants (string literals unquoted, others as
// source text) and struct types in pk.
func (s *scanner) declare(pk *pkg, f *file, gd *ast.GenDecl) {
	for _, spec := range gd.Specs {
		switch sp := spec.(type) {
		case *ast.ValueSpec:
			if gd.Tok != token.CONST {
				continue
			}
			for i, n := range sp.Names {
				if i >= len(sp.Values) {
					continue // const ( A = iota; B ): B repeats A's expression
				}
				if lit, ok := sp.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					pk.consts[n.Name], _ = strconv.Unquote(lit.Value)
					pk.strs[n.Name] = true
				} else {
					pk.consts[n.Name] = s.text(f, sp.Values[i])
				}
			}
		case *ast.TypeSpec:
			if st, ok := sp.Type.(*ast.StructType); ok {
				pk.structs[sp.Name.Name] = st
			}
		}
	}
}

func (s *scanner) text(f *file, e ast.Node) string {
	return string(f.src[s.fset.Position(e.Pos()).Offset:s.fset.Position(e.End()).Offset])
}

// isReaderType reports whether t is *config.Reader.
func isReaderType(f *file, t ast.Expr) bool {
	st, ok := t.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := st.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && f.config != "" && x.Name == f.config && sel.Sel.Name == "Reader"
}

// collect records the reads and calls of every function with a body in f.
func (s *scanner) collect(pk *pkg, f *file) {
	for _, decl := range f.ast.Decls {
		if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
			s.collectFunc(pk, f, fd)
		}
	}
}

// funcScan is the state of scanning one function's body.
type funcScan struct {
	s       *scanner
	pk      *pkg
	f       *file
	fd      *ast.FuncDecl
	fun     *fn
	params  []string        // the function's parameter names, in order
	readers map[string]bool // names of its *config.Reader variables
}

// collectFunc records fd's reads (Reader calls, getenv, os.Getenv) and its
// calls into the repository's packages as s.funcs[key], in s.order.
func (s *scanner) collectFunc(pk *pkg, f *file, fd *ast.FuncDecl) {
	sc := &funcScan{s: s, pk: pk, f: f, fd: fd, readers: map[string]bool{}}
	sc.fun = &fn{key: pk.dir + "." + funcName(fd), pkg: pk, file: f, decl: fd}
	sc.addParams()
	sc.addBodyReaders()
	var stack []ast.Node
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		stack = append(stack, n)
		if c, ok := n.(*ast.CallExpr); ok {
			sc.visitCall(stack, c)
		}
		return true
	})
	s.funcs[sc.fun.key] = sc.fun
	s.order = append(s.order, sc.fun)
}

// funcName is fd's name, "Recv.Name" for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv != nil && len(fd.Recv.List) > 0 {
		return recvName(fd.Recv.List[0].Type) + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// addParams records the parameter names; one of type *config.Reader is a
// reader and makes the function a helper.
func (sc *funcScan) addParams() {
	for _, fld := range sc.fd.Type.Params.List {
		for _, n := range fld.Names {
			sc.params = append(sc.params, n.Name)
			if isReaderType(sc.f, fld.Type) {
				sc.readers[n.Name] = true
				sc.fun.helper = true
			}
		}
	}
}

// addBodyReaders records the readers made in the body:
// r := config.NewReader(getenv).
func (sc *funcScan) addBodyReaders() {
	ast.Inspect(sc.fd.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok {
			return true
		}
		for i, rhs := range as.Rhs {
			c, ok := rhs.(*ast.CallExpr)
			if !ok || i >= len(as.Lhs) {
				continue
			}
			if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewReader" {
				if x, ok := sel.X.(*ast.Ident); ok && sc.f.config != "" && x.Name == sc.f.config {
					if id, ok := as.Lhs[i].(*ast.Ident); ok {
						sc.readers[id.Name] = true
					}
				}
			}
		}
		return true
	})
}

// eval is e as an argument: a string constant (a literal, or a constant of
// this package or another of the repository's), the index of the parameter
// it names, or else its source text (a non-string constant's value text).
func (sc *funcScan) eval(e ast.Expr) value {
	v := value{text: sc.s.text(sc.f, e), param: -1}
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			v.str, _ = strconv.Unquote(x.Value)
			v.konst = true
		}
	case *ast.Ident:
		for i, p := range sc.params {
			if p == x.Name {
				v.param = i
				return v
			}
		}
		sc.pk.constValue(x.Name, &v)
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok {
			if ip, ok := sc.f.imports[id.Name]; ok && strings.HasPrefix(ip, modulePrefix) {
				if other := sc.s.pkgs[strings.TrimPrefix(ip, modulePrefix)]; other != nil {
					other.constValue(x.Sel.Name, &v)
				}
			}
		}
	}
	return v
}

// constValue sets v from pk's constant name, if pk has one: a string
// constant's value, else the constant's source text.
func (pk *pkg) constValue(name string, v *value) {
	if pk.strs[name] {
		v.str, v.konst = pk.consts[name], true
	} else if c, ok := pk.consts[name]; ok {
		v.text = c
	}
}

// visitCall records the call c at the top of stack: a read on a reader, a
// raw os.Getenv or getenv read, or a call into a function of this package
// or another of the repository's.
func (sc *funcScan) visitCall(stack []ast.Node, c *ast.CallExpr) {
	pk, f, fd, fun := sc.pk, sc.f, sc.fd, sc.fun
	switch fx := c.Fun.(type) {
	case *ast.SelectorExpr:
		x, ok := fx.X.(*ast.Ident)
		if !ok {
			return
		}
		switch {
		case sc.readers[x.Name] && readerMethods[fx.Sel.Name] != "" && len(c.Args) > 0:
			fun.reads = append(fun.reads, sc.readerRead(stack, c, fx.Sel.Name))
		case x.Name == "os" && fx.Sel.Name == "Getenv" && len(c.Args) == 1:
			fun.reads = append(fun.reads, sc.s.raw(pk, f, fd, fun, stack, sc.eval))
		default:
			if ip, ok := f.imports[x.Name]; ok && strings.HasPrefix(ip, modulePrefix) {
				fun.calls = append(fun.calls, sc.s.call(pk, f, fd, stack, strings.TrimPrefix(ip, modulePrefix)+"."+fx.Sel.Name, c, sc.eval))
			}
		}
	case *ast.Ident:
		if fx.Name == "getenv" && len(c.Args) == 1 {
			fun.reads = append(fun.reads, sc.s.raw(pk, f, fd, fun, stack, sc.eval))
		} else {
			fun.calls = append(fun.calls, sc.s.call(pk, f, fd, stack, pk.dir+"."+fx.Name, c, sc.eval))
		}
	}
}

// readerRead is the read r.method(NAME, default, extra…) at the top of
// stack.
func (sc *funcScan) readerRead(stack []ast.Node, c *ast.CallExpr, method string) read {
	r := read{name: sc.eval(c.Args[0]), method: method, file: sc.f.path, fn: sc.fun}
	if len(c.Args) > 1 {
		r.def, r.hasDef = sc.eval(c.Args[1]), true
	}
	for _, a := range c.Args[min(2, len(c.Args)):] {
		r.extra = append(r.extra, sc.eval(a))
	}
	r.desc = sc.s.describe(sc.pk, sc.f, sc.fd, stack, r.name)
	return r
}

func recvName(t ast.Expr) string {
	if st, ok := t.(*ast.StarExpr); ok {
		t = st.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return "?"
}

// raw records getenv("NAME") or os.Getenv("NAME"); the default is the
// second argument when the read is the first of orDefault(getenv(…), def).
func (s *scanner) raw(pk *pkg, f *file, fd *ast.FuncDecl, fun *fn, stack []ast.Node, eval func(ast.Expr) value) read {
	c := stack[len(stack)-1].(*ast.CallExpr)
	r := read{name: eval(c.Args[0]), method: "raw", file: f.path, fn: fun}
	if len(stack) >= 2 {
		if p, ok := stack[len(stack)-2].(*ast.CallExpr); ok && len(p.Args) == 2 && p.Args[0] == c {
			if id, ok := p.Fun.(*ast.Ident); ok && id.Name == "orDefault" {
				r.def, r.hasDef = eval(p.Args[1]), true
			}
		}
	}
	r.desc = s.describe(pk, f, fd, stack, r.name)
	return r
}

func (s *scanner) call(pk *pkg, f *file, fd *ast.FuncDecl, stack []ast.Node, target string, c *ast.CallExpr, eval func(ast.Expr) value) call {
	cl := call{target: target}
	for _, a := range c.Args {
		cl.args = append(cl.args, eval(a))
	}
	cl.desc = s.lineComment(f, stack[len(stack)-1])
	return cl
}

// describe finds the comment for the read at the top of stack.
func (s *scanner) describe(pk *pkg, f *file, fd *ast.FuncDecl, stack []ast.Node, name value) string {
	if !name.konst {
		return "" // resolved at the call that names it
	}
	if d := clean(s.lineComment(f, stack[len(stack)-1]), name.str); d != "" {
		return d
	}
	if d := docTable(fd.Doc, name.str); d != "" {
		return d
	}
	// The struct field it is assigned to: Config{Addr: r.String(…)}.
	for i := len(stack) - 2; i >= 1; i-- {
		kv, ok := stack[i].(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, ok := kv.Key.(*ast.Ident)
		lit, ok2 := stack[i-1].(*ast.CompositeLit)
		if !ok || !ok2 {
			break
		}
		tn, ok := lit.Type.(*ast.Ident)
		if !ok {
			break
		}
		if st := pk.structs[tn.Name]; st != nil {
			for _, fld := range st.Fields.List {
				for _, n := range fld.Names {
					if n.Name == key.Name {
						if d := clean(groupText(fld.Comment), name.str); d != "" {
							return d
						}
						if d := clean(groupText(fld.Doc), name.str); d != "" {
							return d
						}
					}
				}
			}
		}
		break
	}
	return ""
}

// lineComment returns the comment on the line where n ends (after it) or
// the comment lines just above the line where n starts.
func (s *scanner) lineComment(f *file, n ast.Node) string {
	start, end := s.fset.Position(n.Pos()), s.fset.Position(n.End())
	for _, cg := range f.ast.Comments {
		p := s.fset.Position(cg.Pos())
		if p.Line == end.Line && p.Offset >= end.Offset {
			return groupText(cg)
		}
	}
	for _, cg := range f.ast.Comments {
		p, e := s.fset.Position(cg.Pos()), s.fset.Position(cg.End())
		if e.Line != start.Line-1 {
			continue
		}
		// Only a comment on lines of its own, not the previous line's trailing one.
		lineStart := p.Offset - (p.Column - 1)
		if strings.TrimSpace(string(f.src[lineStart:p.Offset])) == "" {
			return groupText(cg)
		}
	}
	return ""
}

func groupText(cg *ast.CommentGroup) string {
	if cg == nil {
		return ""
	}
	return strings.Join(strings.Fields(cg.Text()), " ")
}

// clean drops the variable's name (and a separator) from the start of a
// comment, so "// GATEWAY_ADDR: public listener" describes as "public listener".
func clean(s, name string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, name) {
		return s
	}
	rest := strings.TrimPrefix(s, name)
	if rest != "" && !strings.ContainsAny(rest[:1], " :,—-(") {
		return s // a longer name: NAME_FILE
	}
	rest = strings.TrimLeft(rest, " :,—-")
	return strings.TrimSpace(rest)
}

// docTable finds name in a doc comment's indented table
// ("\tNAME   description" and more-indented continuation lines).
func docTable(doc *ast.CommentGroup, name string) string {
	if doc == nil {
		return ""
	}
	lines := strings.Split(doc.Text(), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "\t"+name+" ") {
			continue
		}
		parts := []string{strings.TrimSpace(strings.TrimPrefix(l, "\t"+name))}
		for _, c := range lines[i+1:] {
			if !strings.HasPrefix(c, "\t ") {
				break
			}
			parts = append(parts, strings.TrimSpace(c))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// emitted is a read resolved to a variable name.
type emitted struct {
	name, method, def string
	extra             []string
	desc              string
	file              string
}

// expand resolves a call into a helper that takes a Reader: its reads with
// parameters replaced by the call's arguments, and the helpers it calls.
func (s *scanner) expand(caller *fn, cl call, depth int) []emitted {
	callee := s.funcs[cl.target]
	if callee == nil || !callee.helper || depth > 8 {
		return nil
	}
	subst := func(v value) value {
		if v.param >= 0 && v.param < len(cl.args) {
			return cl.args[v.param]
		}
		return v
	}
	var out []emitted
	for _, r := range callee.reads {
		name := subst(r.name)
		if !name.konst {
			continue
		}
		e := s.emit(r, name, subst)
		if e.desc == "" {
			e.desc = clean(cl.desc, name.str)
		}
		if e.desc == "" {
			e.desc = docTable(caller.decl.Doc, name.str)
		}
		out = append(out, e)
	}
	for _, c := range callee.calls {
		sub := call{target: c.target, desc: c.desc}
		for _, a := range c.args {
			sub.args = append(sub.args, subst(a))
		}
		for _, e := range s.expand(callee, sub, depth+1) {
			if e.desc == "" {
				e.desc = docTable(caller.decl.Doc, e.name)
			}
			out = append(out, e)
		}
	}
	return out
}

func (s *scanner) emit(r read, name value, subst func(value) value) emitted {
	e := emitted{name: name.str, method: r.method, desc: r.desc, file: r.file}
	if r.hasDef {
		d := subst(r.def)
		if d.konst {
			e.def = strconv.Quote(d.str)
		} else {
			e.def = d.text
		}
	}
	for _, x := range r.extra {
		x = subst(x)
		if x.konst {
			e.extra = append(e.extra, x.str)
		} else {
			e.extra = append(e.extra, x.text)
		}
	}
	return e
}

// section names where a read is documented: a service, a switchyard
// command (by file: dev.go is `switchyard dev`), or a platform package.
func section(dir, file string) (title, at string) {
	parts := strings.Split(dir, "/")
	if len(parts) >= 2 && parts[0] == "services" {
		svc := parts[1]
		if svc != "switchyard" {
			return svc, "services/" + svc
		}
		if len(parts) == 2 {
			cmd := strings.TrimSuffix(path.Base(file), ".go")
			if c, ok := commandFiles[cmd]; ok {
				cmd = c
			}
			return "switchyard " + cmd, "services/switchyard"
		}
		if c, ok := commandFiles[parts[2]]; ok {
			return "switchyard " + c, dir
		}
		return "switchyard " + parts[2], dir
	}
	return dir, dir
}

// commandFiles names the switchyard commands whose file or folder is not
// named like the command.
var commandFiles = map[string]string{"replaykey": "replay-key", "migration": "migrate", "devstripe": "dev"}

// sections gathers every function's reads, with the helpers it calls
// expanded, into one Section per service, command or platform package,
// sorted by sectionLess, each one's variables sorted by name.
func (s *scanner) sections() []Section {
	b := sectionBuilder{secs: map[string]*sectionAcc{}, descs: map[string]string{}}
	for _, fun := range s.order {
		if fun.helper && strings.HasPrefix(fun.pkg.dir, "platform/") {
			continue // documented where a service calls it
		}
		title, at := section(fun.pkg.dir, fun.file.path)
		for _, r := range fun.reads {
			if r.name.konst {
				b.add(title, at, s.emit(r, r.name, func(v value) value { return v }))
			}
		}
		for _, c := range fun.calls {
			for _, e := range s.expand(fun, c, 0) {
				b.add(title, at, e)
			}
		}
	}
	return b.finish()
}

// sectionBuilder accumulates sections by title.
type sectionBuilder struct {
	secs  map[string]*sectionAcc
	descs map[string]string // any description of a name, for the ones without
}

// sectionAcc is one section being built: where each variable sits in
// sec.Vars and the rank of the kind it shows so far.
type sectionAcc struct {
	sec   Section
	byKey map[string]int
	ranks map[string]int
}

// add merges the read e into section title (at folder at). A raw read of
// X_FILE only marks X a secret.
func (b *sectionBuilder) add(title, at string, e emitted) {
	a := b.secs[title]
	if a == nil {
		a = &sectionAcc{sec: Section{Title: title, Dir: at}, byKey: map[string]int{}, ranks: map[string]int{}}
		b.secs[title] = a
	}
	name := e.name
	if base, ok := strings.CutSuffix(name, "_FILE"); ok && e.method == "raw" {
		name = base // getenv("X_FILE") next to getenv("X"): a secret's file
	}
	v := a.varNamed(name)
	if e.name != name {
		v.Secret = true
		return
	}
	a.merge(v, e)
	// A platform package's description wins over a service's.
	if b.descs[name] == "" || strings.HasPrefix(at, "platform/") {
		if e.desc != "" {
			b.descs[name] = e.desc
		}
	}
}

// varNamed returns the section's variable name, adding it first.
func (a *sectionAcc) varNamed(name string) *Var {
	i, ok := a.byKey[name]
	if !ok {
		i = len(a.sec.Vars)
		a.byKey[name] = i
		a.ranks[name] = -1
		a.sec.Vars = append(a.sec.Vars, Var{Name: name})
	}
	return &a.sec.Vars[i]
}

// merge folds the read e into v: the most specific kind (kindRank), the
// first non-empty default and description, required or secret if any
// read says so, and every file it is read in.
func (a *sectionAcc) merge(v *Var, e emitted) {
	if r := kindRank[e.method]; r > a.ranks[v.Name] {
		a.ranks[v.Name] = r
		v.Kind = kind(e)
	}
	if v.Default == "" && e.def != "" && e.def != `""` {
		v.Default = e.def
	}
	v.Required = v.Required || e.method == "Required"
	v.Secret = v.Secret || e.method == "Secret" || e.method == "SecretList"
	if v.Description == "" {
		v.Description = e.desc
	}
	if !contains(v.Files, e.file) {
		v.Files = append(v.Files, e.file)
	}
}

// finish fills in missing descriptions from elsewhere and missing kinds
// as string, and sorts the sections and their variables.
func (b *sectionBuilder) finish() []Section {
	var out []Section
	for _, a := range b.secs {
		for i := range a.sec.Vars {
			v := &a.sec.Vars[i]
			if v.Description == "" {
				v.Description = b.descs[v.Name]
			}
			if v.Kind == "" {
				v.Kind = "string"
			}
		}
		sort.Slice(a.sec.Vars, func(i, j int) bool { return a.sec.Vars[i].Name < a.sec.Vars[j].Name })
		out = append(out, a.sec)
	}
	sort.Slice(out, func(i, j int) bool { return sectionLess(out[i], out[j]) })
	return out
}

// sectionLess puts services first, then switchyard commands, then platform
// packages, each alphabetically.
func sectionLess(a, b Section) bool {
	group := func(s Section) int {
		switch {
		case strings.HasPrefix(s.Title, "switchyard "):
			return 1
		case strings.HasPrefix(s.Dir, "services/"):
			return 0
		default:
			return 2
		}
	}
	if ga, gb := group(a), group(b); ga != gb {
		return ga < gb
	}
	return a.Title < b.Title
}

func kind(e emitted) string {
	switch e.method {
	case "raw":
		return "string"
	case "Required":
		return "string"
	case "OneOf":
		return "one of " + strings.Join(quoteAll(e.extra), ", ")
	case "Int":
		if len(e.extra) == 2 {
			return fmt.Sprintf("integer in [%s, %s]", e.extra[0], e.extra[1])
		}
		return "integer"
	case "List":
		return "list (comma-separated)"
	case "SecretList":
		return "secret list (comma- or line-separated)"
	}
	return readerMethods[e.method]
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
