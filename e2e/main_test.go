//go:build !(js && wasm)

package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// workDir holds this process's converted models (about 260 MB for the three
// ResNets); TestMain removes it.
var workDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "residual-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
