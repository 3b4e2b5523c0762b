package webgpu

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
	"github.com/x448/float16"
)

// paramsFields counts the fields of `struct Params` in a shader file.
func paramsFields(t *testing.T, shader string) int {
	t.Helper()
	src, err := shaderSource(shader)
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)struct Params \{(.*?)\n\}`).FindStringSubmatch(src)
	if body == nil {
		t.Fatalf("%s has no struct Params", shader)
	}
	return len(regexp.MustCompile(`(?m)^\s+\w+: (u32|f32),`).FindAllString(body[1], -1))
}

// bindings lists the @binding numbers an entry's shader declares, by type.
func shaderBindings(t *testing.T, shader string) map[int]int {
	t.Helper()
	src, _ := shaderSource(shader)
	m := map[int]int{}
	for _, g := range regexp.MustCompile(`@binding\((\d+)\) var<(uniform|storage, read|storage, read_write)>`).FindAllStringSubmatch(src, -1) {
		n := int(g[1][0] - '0')
		m[n] = map[string]int{"uniform": bindUniform, "storage, read": bindReadOnly, "storage, read_write": bindStorage}[g[2]]
	}
	return m
}

func load(t *testing.T, b *weightstest.Builder, o core.CompileOptions) *core.Program {
	t.Helper()
	fsys, err := b.MapFS()
	if err != nil {
		t.Fatal(err)
	}
	m, err := weights.ReadManifest(fsys)
	if err != nil {
		t.Fatal(err)
	}
	p, err := core.Compile(m, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlansMatchShaders: every dispatch of every conformance program, for
// batches 1 and 10 and every tiling, passes as many parameters as its
// shader's Params has fields, and binds exactly the bindings its layout
// lists, with the access the shader declares.
func TestPlansMatchShaders(t *testing.T) {
	for _, c := range backendtest.Cases() {
		p := load(t, c.Build(), core.CompileOptions{FuseResidual: true, Taps: c.Taps})
		a := NewArena(p)
		for _, n := range []int{1, 10} {
			for _, force := range []string{"", "large", "small", "split"} {
				pl, err := BuildPlan(p, a, n, Tiling{Force: force})
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				for _, d := range pl.Dispatches {
					if got, want := len(d.Params), paramsFields(t, d.Key.Shader); got != want {
						t.Errorf("%s %s: %d parameters, the shader's Params has %d fields", c.Name, d.Key, got, want)
					}
					lay := d.Key.Layout()
					decl := shaderBindings(t, d.Key.Shader)
					if len(lay) != len(d.Slots) {
						t.Fatalf("%s %s: %d slots for %d bindings", c.Name, d.Key, len(d.Slots), len(lay))
					}
					for i, b := range lay {
						if d.Slots[i].Binding != b[0] || decl[b[0]] != b[1] {
							t.Errorf("%s %s: slot %d is binding %d, layout %v, shader declares type %d", c.Name, d.Key, i, d.Slots[i].Binding, b, decl[b[0]])
						}
					}
					for _, g := range d.Groups {
						if g < 1 || g > linearMaxX {
							t.Errorf("%s %s: grid %v", c.Name, d.Key, d.Groups)
						}
					}
				}
			}
		}
	}
}

// TestConvChoice: big layers take the 64x64 tile, small ones the 32x32
// tile, and the deep 7x7 stage splits K so that the GPU has enough
// workgroups.
func TestConvChoice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		s          convShape
		n          int
		tile       convTile
		minSplits  int
		maxSplits  int
		minWorkers int
	}{
		{"stem, batch 10", convShape{1, 64, 147, 112 * 112}, 10, tileLarge, 1, 1, DefaultTargetWorkgroups},
		{"res2 1x1, batch 1", convShape{1, 256, 64, 56 * 56}, 1, tileSmall, 1, 1, DefaultTargetWorkgroups},
		{"res5 3x3, batch 1", convShape{1, 512, 4608, 49}, 1, tileSmall, 4, 72, DefaultTargetWorkgroups},
		{"res5 1x1 expand, batch 1 (K too short to split)", convShape{1, 2048, 512, 49}, 1, tileSmall, 1, 1, 128},
	} {
		tile, splits := convChoice(tc.s, tc.n, Tiling{})
		wgs := tc.s.groups * ceilDiv(tc.s.m, 4*tile.ty) * ceilDiv(tc.n*tc.s.ohw, 4*tile.tx) * splits
		if tile != tc.tile || splits < tc.minSplits || splits > tc.maxSplits || wgs < tc.minWorkers {
			t.Errorf("%s: tile %v, %d splits, %d workgroups", tc.name, tile, splits, wgs)
		}
	}
}

// TestConvLayout: the packed weights read back, as conv.wgsl indexes them,
// give every weight of every group, and zeros in the padding.
func TestConvLayout(t *testing.T) {
	c := caseNamed(t, "conv/rect-dilated-grouped-nobias")
	b := c.Build()
	fsys, _ := b.MapFS()
	w, err := weights.Read(fsys, weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := core.Compile(w.Manifest, core.CompileOptions{First: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Steps[0]
	r := convRegion(w.Tensor(s.Weight), s.Conv)
	words := make([]uint32, r.Words)
	if err := r.Fill(words, w); err != nil {
		t.Fatal(err)
	}
	src := w.F16(s.Weight)
	for g := range r.Groups {
		for kp := range r.KPad / 2 {
			for m := range r.MPad {
				word := words[(g*r.KPad/2+kp)*r.MPad+m]
				for half := range 2 {
					k := 2*kp + half
					got := uint16(word >> (16 * half))
					var want uint16
					if m < r.M && k < r.K {
						want = src[(g*r.M+m)*r.K+k]
					}
					if got != want {
						t.Fatalf("group %d k %d m %d: %#x, want %#x", g, k, m, got, want)
					}
				}
			}
		}
	}
}

// TestRowsAndF32Layouts covers the inner-product rows (odd K) and the
// float32 regions.
func TestRowsAndF32Layouts(t *testing.T) {
	vals := weightstest.New("rows", 3, 1, 1, 3).Random(5*7, 1)
	src := &fakeWeights{f16: map[string][]uint16{}, f32: map[string][]float32{"s": {1, 2, 3, 4, 5}}}
	for _, v := range vals {
		src.f16["w"] = append(src.f16["w"], float16.Fromfloat32(v).Bits())
	}
	r := rowsRegion(&weights.Tensor{Name: "w", DType: weights.DTypeF16}, 5, 7)
	words := make([]uint32, r.Words)
	if err := r.Fill(words, src); err != nil {
		t.Fatal(err)
	}
	for o := range 5 {
		for k := range 8 {
			got := uint16(words[o*r.RowWords+k/2] >> (16 * (k % 2)))
			var want uint16
			if k < 7 {
				want = src.f16["w"][o*7+k]
			}
			if got != want {
				t.Fatalf("row %d k %d: %#x, want %#x", o, k, got, want)
			}
		}
	}
	f := f32Region(5, "s", "")
	words = make([]uint32, f.Words)
	if err := f.Fill(words, src); err != nil {
		t.Fatal(err)
	}
	for i, want := range []float32{1, 2, 3, 4, 5, 0, 0, 0, 0, 0} {
		if got := math.Float32frombits(words[i]); got != want {
			t.Errorf("f32 region word %d: %v, want %v", i, got, want)
		}
	}
	if err := r.Fill(make([]uint32, r.Words), &fakeWeights{}); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("Fill without data: %v", err)
	}
}

type fakeWeights struct {
	f16 map[string][]uint16
	f32 map[string][]float32
}

func (f *fakeWeights) F16(n string) []uint16  { return f.f16[n] }
func (f *fakeWeights) F32(n string) []float32 { return f.f32[n] }

func caseNamed(t *testing.T, name string) backendtest.Case {
	for _, c := range backendtest.Cases() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %s", name)
	return backendtest.Case{}
}

// TestArenaAndLimits: regions are aligned, pages respect the buffer limit,
// and a model too big for a limit gets a LimitError naming it.
func TestArenaAndLimits(t *testing.T) {
	p := load(t, backendtest.SmallResNet(1), core.CompileOptions{FuseResidual: true})
	a := NewArena(p)
	if err := a.place(256, 32768, 32768); err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Regions {
		if r.Offset%256 != 0 || r.Offset+int64(r.Words)*4 > a.Pages[r.Page] || a.Pages[r.Page] > 32768 {
			t.Errorf("region %v at page %d offset %d (page %d bytes)", r.Tensors, r.Page, r.Offset, a.Pages[r.Page])
		}
	}
	if len(a.Pages) < 2 {
		t.Errorf("%d pages of at most 32 KiB", len(a.Pages))
	}
	err := a.place(256, 1024, 1024)
	if le, ok := err.(*LimitError); !ok || le.Limit != "maxStorageBufferBindingSize" {
		t.Errorf("a 1 KiB buffer limit: %v", err)
	}
	n := needsOf(p, a)
	if err := DefaultLimits.Check(n); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	small := DefaultLimits
	small.MaxStorageBufferBindingSize = n.ImageBytes - 4
	if le, ok := small.Check(n).(*LimitError); !ok || le.Need != n.ImageBytes {
		t.Errorf("a binding one float too small: %v", small.Check(n))
	}
	small = DefaultLimits
	small.MaxComputeWorkgroupStorageSize = 4096
	if le, ok := small.Check(n).(*LimitError); !ok || le.Limit != "maxComputeWorkgroupStorageSize" {
		t.Errorf("4 KiB of workgroup storage: %v", small.Check(n))
	}
	if got := DefaultLimits.MaxBatch(3 << 20); got != 42 {
		t.Errorf("MaxBatch(3 MiB) = %d, want 42", got)
	}
}

// TestDispatchCount: a small ResNet fused is one dispatch per conv (the
// residual sums are in the epilogues), plus pools, the inner product and
// the softmax; nothing for the flatten.
func TestDispatchCount(t *testing.T) {
	p := load(t, backendtest.SmallResNet(1), core.CompileOptions{FuseResidual: true})
	pl, err := BuildPlan(p, NewArena(p), 1, Tiling{Force: "small"})
	if err != nil {
		t.Fatal(err)
	}
	counts, total := pl.Counts()
	// 1 stem + 4 blocks x 3 + 2 projections = 15 convs; 2 pools; 1 inner product; 1 softmax.
	if counts["conv.wgsl:main"] != 15 || counts["pool.wgsl:main"] != 2 || total != 19 || counts["elementwise.wgsl:eltwise"] != 0 {
		t.Errorf("dispatches: %v (%d)", counts, total)
	}
}
