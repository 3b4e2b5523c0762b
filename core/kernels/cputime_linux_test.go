package kernels

import (
	"syscall"
	"time"
)

// threadCPUTime is the CPU time consumed by the calling OS thread. The
// benchmarks lock their goroutine to a thread and report GFLOP/s per
// CPU-second as well as per wall-second, since the machines that run them
// are often shared and a wall clock then measures the neighbours.
func threadCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
