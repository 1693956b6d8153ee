package bench

import "time"

// ProcessCPU is the CPU time this process has used, for Go benchmarks that
// report CPU per operation, which a busy machine skews far less than wall time.
func ProcessCPU() (time.Duration, bool) { return processCPU() }
