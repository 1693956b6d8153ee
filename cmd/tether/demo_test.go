package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// The demo is read in a terminal: it must fit 80 columns, end no line in
// blanks, and say exactly what a cached check costs.
func TestDemoOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"demo"}, &out, &errb); code != 0 {
		t.Fatalf("demo: exit %d\nstderr: %s\nstdout: %s", code, errb.String(), out.String())
	}
	text := out.String()
	checkTerminalText(t, text)
	for _, want := range []string{
		"401 Unauthorized: refused", // the thief, after the revoke
		"secret once with SHA-256",
		" 12. a replay there",
		"Done in",
	} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "no crypto") {
		t.Errorf("demo says %q, but a cached check runs one SHA-256", "no crypto")
	}
}

// checkTerminalText fails the test for any line wider than demoWidth, ending
// in blanks or holding a tab.
func checkTerminalText(t *testing.T, text string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > demoWidth {
			t.Errorf("line %d is %d columns, want ≤ %d: %q", i+1, n, demoWidth, line)
		}
		if strings.TrimRight(line, " \t") != line {
			t.Errorf("line %d ends in whitespace: %q", i+1, line)
		}
		if strings.Contains(line, "\t") {
			t.Errorf("line %d has a tab, whose width the terminal decides: %q", i+1, line)
		}
	}
}

// demo --web prints its addresses within the same bounds, then serves until
// interrupted.
func TestDemoWebOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &markWriter{mark: "Press Ctrl-C to stop.", seen: make(chan struct{})}
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"demo", "--web"}, out, &errb) }()
	select {
	case <-out.seen:
	case code := <-done:
		t.Fatalf("demo --web ended early: exit %d: %s", code, errb.String())
	case <-time.After(30 * time.Second): // a deadline for a hang, not a timing
		t.Fatal("demo --web never said it was ready")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo --web: exit %d: %s", code, errb.String())
	}
	text := out.String()
	checkTerminalText(t, text)
	for _, want := range []string{"/demo/sign-in", "/account/sessions", "/admin/", "admin key:", "Stopped."} {
		if !strings.Contains(text, want) {
			t.Errorf("demo --web output lacks %q:\n%s", want, text)
		}
	}
}

// markWriter collects what is written and closes seen once mark appears.
type markWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	mark string
	seen chan struct{}
	once sync.Once
}

func (w *markWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.mark) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *markWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestWrapWords(t *testing.T) {
	long := strings.Repeat("x", demoWidth+5)
	for _, tt := range []struct {
		name, text, first, rest string
		want                    []string
	}{
		{"short", "a b c", "> ", "  ", []string{"> a b c"}},
		{"empty", "", "> ", "  ", []string{"> "}},
		{"wraps at a space", strings.Repeat("word ", 20), "", "  ", []string{
			strings.TrimSpace(strings.Repeat("word ", 16)), "  " + strings.TrimSpace(strings.Repeat("word ", 4))}},
		{"an overlong word stands alone", "a " + long + " b", "", "", []string{"a", long, "b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := wrapWords(tt.text, tt.first, tt.rest)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
