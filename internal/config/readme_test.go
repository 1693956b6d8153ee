package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite README.md's settings table from the table")

const (
	readmeBegin = "<!-- settings table: generated from internal/config; go test ./internal/config -run TestREADME -update -->\n"
	readmeEnd   = "<!-- end settings table -->\n"
)

// markdownTable is the README's view of the table.
func markdownTable() string {
	var b strings.Builder
	b.WriteString("| YAML key | variable | flag | default | meaning |\n| --- | --- | --- | --- | --- |\n")
	code := func(s, prefix string) string {
		if s == "" {
			return ""
		}
		return "`" + prefix + s + "`"
	}
	for _, s := range Settings() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code(s.Key, ""), code(s.Env, ""), code(s.Flag, "--"),
			code(s.Default, ""), strings.ReplaceAll(s.Help, "|", `\|`))
	}
	return b.String()
}

// TestREADME: README.md's settings table is the table, and its example file
// loads.
func TestREADME(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, readmeBegin), strings.Index(readme, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no settings table between %q and %q", readmeBegin, readmeEnd)
	}
	got, want := readme[i+len(readmeBegin):j], markdownTable()
	if got != want {
		if *update {
			if err := os.WriteFile(path, []byte(readme[:i+len(readmeBegin)]+want+readme[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md's settings table differs from internal/config's; run go test ./internal/config -run TestREADME -update\ngot:\n%s\nwant:\n%s", got, want)
	}

	example := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(readme[j:])
	if example == nil {
		t.Fatal("README.md has no YAML example after the settings table")
	}
	c := Default()
	if err := c.LoadFile(writeFile(t, example[1])); err != nil {
		t.Errorf("README.md's example configuration: %v", err)
	}
}
