//go:build !(js && wasm)

package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/residual-go/residual/internal/testfiles"
)

// TestCoreImportsNoTools: nothing core or its tests import, in any build the
// project makes (native and js/wasm, simd and scalar), is under tools/. Tests
// that need the converter belong in this package.
func TestCoreImportsNoTools(t *testing.T) {
	const tools = "github.com/residual-go/residual/tools/"
	builds := [][]string{
		{"GOEXPERIMENT=simd"},
		{"GOEXPERIMENT=nosimd"},
		{"GOOS=js", "GOARCH=wasm", "GOEXPERIMENT=simd"},
		{"GOOS=js", "GOARCH=wasm", "GOEXPERIMENT=nosimd"},
	}
	for _, env := range builds {
		cmd := exec.Command("go", "list", "-test", "-deps", "./core/...")
		cmd.Dir = testfiles.Root()
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			t.Fatalf("%v go list -test -deps ./core/...: %v\n%s", env, err, msg)
		}
		pkgs := strings.Fields(string(out))
		if len(pkgs) < 10 {
			t.Fatalf("%v: go list named only %d packages: %q", env, len(pkgs), out)
		}
		for _, p := range pkgs {
			if strings.HasPrefix(p, tools) {
				t.Errorf("%v: go list -test -deps ./core/... names %s; move the test that needs it to e2e/", env, p)
			}
		}
	}
}
