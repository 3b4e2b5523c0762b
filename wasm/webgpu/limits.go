package webgpu

import (
	"fmt"

	"github.com/residual-go/residual/core"
)

// Limits are the WebGPU limits the backend depends on (GPUSupportedLimits
// names, in bytes or counts).
type Limits struct {
	MaxBufferSize                     int64
	MaxStorageBufferBindingSize       int64
	MaxStorageBuffersPerShaderStage   int
	MaxComputeWorkgroupStorageSize    int
	MaxComputeInvocationsPerWorkgroup int
	MaxComputeWorkgroupsPerDimension  int
	MinStorageBufferOffsetAlignment   int
	MinUniformBufferOffsetAlignment   int
}

// DefaultLimits are WebGPU's defaults: what requestDevice grants without
// requiredLimits.
var DefaultLimits = Limits{
	MaxBufferSize:                     256 << 20,
	MaxStorageBufferBindingSize:       128 << 20,
	MaxStorageBuffersPerShaderStage:   8,
	MaxComputeWorkgroupStorageSize:    16 << 10,
	MaxComputeInvocationsPerWorkgroup: 256,
	MaxComputeWorkgroupsPerDimension:  65535,
	MinStorageBufferOffsetAlignment:   256,
	MinUniformBufferOffsetAlignment:   256,
}

// Shader requirements that do not depend on the model: conv.wgsl's large
// tile (two BK x 64 float tiles in workgroup memory, 256 invocations) and
// its seven bindings, six of them storage buffers.
const (
	needWorkgroupStorage = 2 * convBK * 64 * 4
	needInvocations      = 256
	needStorageBuffers   = 6
	paramsSlot           = 256 // bytes per dispatch in the uniform buffer (a multiple of every allowed alignment)
)

// LimitError says that a model needs more than the device allows.
type LimitError struct {
	Limit      string // the GPUSupportedLimits name
	Need, Have int64
	What       string // what needs it
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("webgpu: %s needs %s = %d, the device allows %d", e.What, e.Limit, e.Need, e.Have)
}

// Needs is what a program needs from the device.
type Needs struct {
	ImageBytes   int64 // the largest activation buffer, per image
	WeightRegion int64 // the largest weight region (one binding)
	PartialBytes int64 // split-K scratch per image, for the largest split
}

// needsOf computes a program's needs for the arena a.
func needsOf(p *core.Program, a *Arena) Needs {
	var n Needs
	for _, b := range p.Buffers {
		n.ImageBytes = max(n.ImageBytes, int64(b)*4)
	}
	for _, r := range a.Regions {
		n.WeightRegion = max(n.WeightRegion, int64(r.Words)*4)
	}
	return n
}

// Check reports the first limit the program cannot live with.
func (l Limits) Check(n Needs) error {
	switch {
	case l.MaxComputeWorkgroupStorageSize < needWorkgroupStorage:
		return &LimitError{Limit: "maxComputeWorkgroupStorageSize", Need: needWorkgroupStorage, Have: int64(l.MaxComputeWorkgroupStorageSize), What: "conv.wgsl's 64x64 tiles"}
	case l.MaxComputeInvocationsPerWorkgroup < needInvocations:
		return &LimitError{Limit: "maxComputeInvocationsPerWorkgroup", Need: needInvocations, Have: int64(l.MaxComputeInvocationsPerWorkgroup), What: "the shaders' 256-thread workgroups"}
	case l.MaxStorageBuffersPerShaderStage < needStorageBuffers:
		return &LimitError{Limit: "maxStorageBuffersPerShaderStage", Need: needStorageBuffers, Have: int64(l.MaxStorageBuffersPerShaderStage), What: "conv.wgsl"}
	case l.MaxComputeWorkgroupsPerDimension < linearMaxX:
		return &LimitError{Limit: "maxComputeWorkgroupsPerDimension", Need: linearMaxX, Have: int64(l.MaxComputeWorkgroupsPerDimension), What: "the dispatch grids"}
	case n.ImageBytes > l.MaxStorageBufferBindingSize || n.ImageBytes > l.MaxBufferSize:
		return &LimitError{Limit: "maxStorageBufferBindingSize", Need: n.ImageBytes, Have: min(l.MaxStorageBufferBindingSize, l.MaxBufferSize),
			What: "the largest activation buffer of one image"}
	case n.WeightRegion > l.MaxStorageBufferBindingSize || n.WeightRegion > l.MaxBufferSize:
		return &LimitError{Limit: "maxStorageBufferBindingSize", Need: n.WeightRegion, Have: min(l.MaxStorageBufferBindingSize, l.MaxBufferSize),
			What: "the largest weight tensor"}
	}
	return nil
}

// MaxBatch is the largest batch whose buffers fit one binding each, given
// the per-image sizes (activation buffers, split-K scratch).
func (l Limits) MaxBatch(perImage ...int64) int {
	limit := min(l.MaxStorageBufferBindingSize, l.MaxBufferSize)
	best := 1 << 20
	for _, b := range perImage {
		if b > 0 {
			best = min(best, int(limit/b))
		}
	}
	return max(best, 1)
}
