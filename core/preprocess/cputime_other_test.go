//go:build !unix

package preprocess

import "time"

// processCPU is unavailable here; benchmarks then report 0 cpu-ms/op.
func processCPU() time.Duration { return 0 }
