//go:build !linux && !js

package kernels

import "time"

// threadCPUTime is not available here; benchmarks report wall-clock figures only.
func threadCPUTime() (time.Duration, bool) { return 0, false }
