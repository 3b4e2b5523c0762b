package kernels

import (
	"syscall"
	"time"
	"unsafe"
)

// threadCPUTime is the CPU time consumed by the calling OS thread
// (clock_gettime(CLOCK_THREAD_CPUTIME_ID): nanoseconds, unlike
// getrusage's tick-based split). The benchmarks lock their goroutine to a
// thread and report GFLOP/s per CPU-second as well as per wall-second,
// since the machines that run them are often shared and a wall clock then
// measures the neighbours.
func threadCPUTime() (time.Duration, bool) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
