package bench

import (
	"runtime"
	"time"
)

// Schema is the version of Report's JSON shape. It changes only when a field
// is removed or changes meaning; new fields may appear without it changing.
const Schema = 1

// Report is everything `tether bench` measures in one run; --json writes it
// as is. Every duration is an integer number of nanoseconds in a field whose
// name ends in _ns.
type Report struct {
	Schema      int          `json:"schema"`
	Machine     Machine      `json:"machine"`
	Validation  []Validation `json:"validation"`
	HTTP        []HTTPResult `json:"http"`
	Propagation Propagation  `json:"propagation"`
	// JWTRevocationWindow is how long a stolen or logged-out JWT stays valid
	// at worst: its whole lifetime, here the customary 15 minutes.
	JWTRevocationWindow time.Duration `json:"jwt_revocation_window_ns"`
}

// Machine says where and how a report was measured.
type Machine struct {
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"go_version"`
	OS        string    `json:"os"`
	Arch      string    `json:"arch"`
	Date      time.Time `json:"date"`
	Mode      string    `json:"mode"` // "quick" or "full"
}

// ThisMachine describes the running process's machine, now.
func ThisMachine(mode string) Machine {
	return Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Date: time.Now().UTC().Truncate(time.Second), Mode: mode}
}

// Validation is the cost of validating one token of one kind.
type Validation struct {
	Name          string  `json:"name"`
	Opaque        bool    `json:"opaque"` // a Tether session token; false: self-contained (JWT, PASETO)
	NsPerOp       float64 `json:"ns_per_op"`
	TokenBytes    int     `json:"token_bytes"`
	XCachedOpaque float64 `json:"x_cached_opaque"` // NsPerOp over the cached opaque token's
	RevokedWhen   string  `json:"revoked_when"`    // when a revocation takes effect
}

// HTTPResult is one server under the load generator.
type HTTPResult struct {
	Name        string `json:"name"`
	Concurrency int    `json:"concurrency"`
	Load
}

// Propagation is the time from a revoke returning on one node until a
// request to the other node is refused.
type Propagation struct {
	Store  string        `json:"store"`
	Nodes  int           `json:"nodes"` // 1: revoked and checked on the same node
	Trials int           `json:"trials"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
}
