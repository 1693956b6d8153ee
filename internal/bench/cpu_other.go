//go:build !unix

package bench

import "time"

// processCPU is unknown here: CPU per request is left out.
func processCPU() (time.Duration, bool) { return 0, false }
