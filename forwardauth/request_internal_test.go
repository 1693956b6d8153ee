package forwardauth

import (
	"strings"
	"testing"
)

// FuzzPlainPath: the fast path (a path with nothing to decode or resolve is
// returned as is) agrees with resolving it.
func FuzzPlainPath(f *testing.F) {
	for _, p := range []string{"/", "/a", "/a/", "//a", "/a/./b", "/a/..", "/a;b", "/%41", "/a//", "/.hidden", "/..a/b."} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		// What normalisePath has refused before it asks plainPath.
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\") ||
			strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return
		}
		if !plainPath(p) {
			return
		}
		got, err := resolvePath(p)
		if err != nil || got != p {
			t.Fatalf("plainPath(%q) is true, but resolvePath gives %q, %v", p, got, err)
		}
	})
}
