//go:build !unix

package convert

import "time"

func cpuTime() (time.Duration, bool) { return 0, false }
