//go:build js

package kernels

import (
	"syscall/js"
	"time"
)

// threadCPUTime is, under node, the process's CPU time (process.cpuUsage):
// Go's one WebAssembly thread plus node's own helper threads, which are idle
// once the benchmark's code is compiled. In a browser it is not available.
func threadCPUTime() (time.Duration, bool) {
	proc := js.Global().Get("process")
	if proc.Type() != js.TypeObject || proc.Get("cpuUsage").Type() != js.TypeFunction {
		return 0, false
	}
	u := proc.Call("cpuUsage")
	return time.Duration(u.Get("user").Float()+u.Get("system").Float()) * time.Microsecond, true
}
