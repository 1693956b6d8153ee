package tether_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A Go snippet in the README or docs is a promise to a reader who pastes it.
// TestDocSnippetsCompile builds every ```go block of every Markdown file in
// the repository root and under docs/ against the module as it is, so a
// changed API breaks this test instead of a reader's first try.
//
// A block that starts with `package` is a whole file. Any other block is a
// fragment: first tried as statements, in a function that offers the names
// snippets conventionally take as given (ctx, st, m, app, w, r), then as
// top-level declarations. Imports are added for the packages a fragment
// names, from this module and the standard library's usual ones.
func TestDocSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not found: %v", err)
		}
		t.Skipf("go tool not found: %v", err)
	}
	var docs []string
	roots, _ := filepath.Glob("*.md")
	docs = append(docs, roots...)
	filepath.WalkDir("docs", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	var snippets []snippet
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		snippets = append(snippets, goBlocks(doc, b)...)
	}
	if !slices.ContainsFunc(snippets, func(s snippet) bool { return s.doc == "README.md" }) {
		t.Fatal("found no ```go block in README.md: the extractor is broken")
	}

	pkgs := modulePackages(t, goBin)
	// Inside the module, so the snippets build against this very tree; under
	// testdata, so ./... never sees them.
	dir, err := os.MkdirTemp("testdata", "snippets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for i, s := range snippets {
		src, err := s.file(pkgs)
		if err != nil {
			t.Errorf("%s:%d: %v", s.doc, s.line, err)
			continue
		}
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "snippet.go"), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goBin, "vet", "./"+filepath.ToSlash(dir)+"/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%d Go snippets from %v do not build: %v\n%s", len(snippets), docs, err, out)
	}
}

type snippet struct {
	doc  string
	line int // of the block's first line of code
	code string
}

// goBlocks returns the ```go fenced blocks of a Markdown document.
func goBlocks(doc string, md []byte) []snippet {
	var out []snippet
	var cur *snippet
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && isGoFence(trimmed):
			cur = &snippet{doc: doc, line: n + 1}
			body.Reset()
		case cur != nil && trimmed == "```":
			cur.code = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	return out
}

// isGoFence reports whether a trimmed line opens a Go block: ```go or
// ```golang, possibly followed by attributes.
func isGoFence(line string) bool {
	lang, _, _ := strings.Cut(strings.TrimPrefix(line, "```"), " ")
	return strings.HasPrefix(line, "```") && (lang == "go" || lang == "golang")
}

// stdPackages are the standard library packages a snippet may name without
// importing them.
var stdPackages = map[string]string{
	"bytes": "bytes", "context": "context", "errors": "errors", "fmt": "fmt", "http": "net/http",
	"httptest": "net/http/httptest", "io": "io", "json": "encoding/json", "log": "log", "slog": "log/slog",
	"os": "os", "signal": "os/signal", "strings": "strings", "sync": "sync", "time": "time",
}

// modulePackages maps the name of each importable package of this module to
// its import path.
func modulePackages(t *testing.T, goBin string) map[string]string {
	t.Helper()
	out, err := exec.Command(goBin, "list", "-f", "{{.Name}} {{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]string{}
	for line := range strings.Lines(string(out)) {
		name, path, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name != "main" && !strings.Contains(path, "/internal/") {
			pkgs[name] = path
		}
	}
	return pkgs
}

// file turns the snippet into a Go source file. A //line directive makes the
// compiler report errors at the snippet's place in its document.
func (s snippet) file(pkgs map[string]string) ([]byte, error) {
	doc, _ := filepath.Abs(s.doc) // relative, it would be taken as relative to the file
	at := fmt.Sprintf("//line %s:%d\n", doc, s.line)
	if strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
		return []byte(at + s.code), nil
	}
	// As statements: in a block of their own, so that := may redeclare a
	// given name with another type; every name they declare is then used, as
	// a fragment shows a step, not a whole program.
	stmts := "func snippet(ctx context.Context, st tether.Store, m *tether.Manager, app http.Handler, w http.ResponseWriter, r *http.Request) {\n{\n" +
		at + s.code
	if f, err := parser.ParseFile(token.NewFileSet(), "", "package main\n"+stmts+"}\n}\n", 0); err == nil {
		block := f.Decls[0].(*ast.FuncDecl).Body.List[0].(*ast.BlockStmt)
		var uses strings.Builder
		for _, name := range declaredNames(block.List) {
			fmt.Fprintf(&uses, "_ = %s\n", name)
		}
		return withImports(pkgs, stmts+uses.String()+"}\n}\n", "context", "tether", "http")
	}
	// As top-level declarations.
	if _, err := parser.ParseFile(token.NewFileSet(), "", "package main\n"+s.code, 0); err != nil {
		return nil, fmt.Errorf("neither statements nor declarations: %v", err)
	}
	return withImports(pkgs, at+s.code)
}

// declaredNames are the names that stmts declare in their own block.
func declaredNames(stmts []ast.Stmt) []string {
	var names []string
	add := func(id *ast.Ident) {
		if id.Name != "_" && !slices.Contains(names, id.Name) {
			names = append(names, id.Name)
		}
	}
	for _, st := range stmts {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, e := range st.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.DeclStmt:
			if g, ok := st.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, spec := range g.Specs {
					for _, id := range spec.(*ast.ValueSpec).Names {
						add(id)
					}
				}
			}
		}
	}
	return names
}

// withImports prefixes body with package main, a main function and imports
// of the packages that body names (and of always).
func withImports(pkgs map[string]string, body string, always ...string) ([]byte, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package main\n"+body, 0)
	if err != nil {
		return nil, err
	}
	used := slices.Clone(always)
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && !slices.Contains(used, id.Name) {
				used = append(used, id.Name)
			}
		}
		return true
	})
	var src strings.Builder
	src.WriteString("package main\n\nimport (\n")
	for _, name := range used {
		path, ok := pkgs[name]
		if !ok {
			path, ok = stdPackages[name]
		}
		if ok {
			fmt.Fprintf(&src, "\t%s %q\n", name, path)
		}
	}
	src.WriteString(")\n\n")
	if !strings.Contains(body, "func main()") {
		src.WriteString("func main() {}\n\n")
	}
	src.WriteString(body)
	return []byte(src.String()), nil
}
