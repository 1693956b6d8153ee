package servicetest

import (
	"os/exec"
	"testing"
)

// NPMInstall installs the packages pinned by dir's package-lock.json (npm ci,
// no install scripts), for tests that check Tether against an independent
// implementation in Node. Without node or npm it skips, or fails under CI.
func NPMInstall(t testing.TB, dir string) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, "%s not on PATH", tool)
		}
	}
	cmd := exec.Command("npm", "ci", "--prefix", dir, "--ignore-scripts", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		SkipOrFail(t, "npm ci in %s: %v\n%s", dir, err, out)
	}
}
