package webgpu

import (
	"embed"
	"fmt"
)

// The WGSL sources, one op family per file (shaders/*.wgsl).
//
//go:embed shaders/*.wgsl
var shaderFS embed.FS

// shaderSource returns the WGSL of a shader file. Tests replace it to
// inject a broken shader (see export_test.go).
var shaderSource = func(name string) (string, error) {
	b, err := shaderFS.ReadFile("shaders/" + name)
	if err != nil {
		return "", fmt.Errorf("webgpu: no shader %s: %w", name, err)
	}
	return string(b), nil
}
