//go:build !unix

package main

import "time"

// processCPU is unavailable here; the benchmark then reports 0 cpu-ms/img.
func processCPU() time.Duration { return 0 }
