package core

import (
	"math"
	"testing"
	"testing/fstest"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// tinyResNet builds a small network that uses every op type and the graph
// shapes of ResNet (a strided stem, a max pool, a bottleneck block with a
// projection shortcut, an identity block whose input is read twice), plus a
// concat, an affine, a standalone ReLU, a global average pool, flatten, an
// inner product and softmax. 3x20x18 input, 7 classes.
func tinyResNet(seed uint64) *weightstest.Builder {
	b := weightstest.New("tiny-resnet", 3, 20, 18, seed)
	b.ShardSize = 2048
	b.Conv("data", "conv1", 3, 8, 3, 2, 1, true, 0.4)
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv1"}, Output: "pool1", Pool: "max", RoundMode: "ceil",
		Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}})
	// Bottleneck with projection.
	b.Conv("pool1", "a_branch1", 8, 12, 1, 1, 0, false, 0.4)
	b.Conv("pool1", "a_branch2a", 8, 4, 1, 1, 0, true, 0.4)
	b.Conv("a_branch2a", "a_branch2b", 4, 4, 3, 1, 1, true, 0.4)
	b.Conv("a_branch2b", "a_branch2c", 4, 12, 1, 1, 0, false, 0.4)
	b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"a_branch1", "a_branch2c"}, Output: "a", Operation: "sum", ReLU: true})
	// Identity block.
	b.Conv("a", "b_branch2a", 12, 4, 1, 1, 0, true, 0.4)
	b.Conv("b_branch2a", "b_branch2b", 4, 12, 3, 1, 1, false, 0.4)
	b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"a", "b_branch2b"}, Output: "b", Operation: "sum", Coeffs: []float64{1, -0.5}})
	// Caffe-style in-place ReLU: the same blob name again.
	b.Op(weights.Op{Name: "b_relu", Type: weights.OpReLU, Inputs: []string{"b"}, Output: "b", NegativeSlope: 0.1})
	b.Conv("b", "c", 12, 6, 3, 1, 1, false, 0.4)
	b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"c", "c"}, Output: "cc", Operation: "max"})
	b.Op(weights.Op{Type: weights.OpConcat, Inputs: []string{"b", "cc"}, Output: "cat"})
	b.F16("scale", []int{18}, b.Random(18, 2))
	b.F16("shift", []int{18}, b.Random(18, 1))
	b.Op(weights.Op{Type: weights.OpAffine, Inputs: []string{"cat"}, Output: "aff", Weight: "scale", Bias: "shift", ReLU: true})
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"aff"}, Output: "avg", Pool: "ave", RoundMode: "ceil",
		Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}, Pad: [2]int{1, 1}})
	b.Op(weights.Op{Type: weights.OpFlatten, Inputs: []string{"avg"}, Output: "flat"})
	b.InnerProduct("flat", "fc", 18*3*3, 7, false, 0.3)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.M.Preprocess.MeanValues = []float64{104, 117, 123}
	b.M.Preprocess.Scale = 1.0 / 64
	b.Labels(7)
	return b
}

func buildFS(t testing.TB, b *weightstest.Builder) fstest.MapFS {
	t.Helper()
	fsys, err := b.MapFS()
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func readWeights(t testing.TB, b *weightstest.Builder) *weights.Weights {
	t.Helper()
	w, err := weights.Read(buildFS(t, b), weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// randomInput returns a seeded input of n values in [-scale, scale).
func randomInput(b *weightstest.Builder, n int, scale float32) []float32 {
	return b.Random(n, scale)
}

// naiveForward runs m in float64 with loops written straight from Caffe's
// definitions, sharing no code with the kernels: the reference the executor
// is compared against.
func naiveForward(w *weights.Weights, input []float32) []float64 {
	m := w.Manifest
	type blob struct {
		s [3]int
		v []float64
	}
	tensor := func(name string) []float64 {
		if name == "" {
			return nil
		}
		var out []float64
		if f := w.F32(name); f != nil {
			for _, x := range f {
				out = append(out, float64(x))
			}
			return out
		}
		for _, h := range w.F16(name) {
			out = append(out, f16(h))
		}
		return out
	}
	blobs := map[string]blob{}
	in := make([]float64, len(input))
	for i, x := range input {
		in[i] = float64(x)
	}
	blobs[m.Input.Name] = blob{[3]int{m.Input.Channels, m.Input.Height, m.Input.Width}, in}
	for _, op := range m.Ops {
		x := blobs[op.Inputs[0]]
		C, H, W := x.s[0], x.s[1], x.s[2]
		oc, oh, ow := op.OutShape[0], op.OutShape[1], op.OutShape[2]
		out := make([]float64, oc*oh*ow)
		wt, bias := tensor(op.Weight), tensor(op.Bias)
		switch op.Type {
		case weights.OpConv:
			g := op.Groups()
			d := op.Dilations()
			icg, ocg := C/g, oc/g
			for o := range oc {
				gi := o / ocg
				for y := range oh {
					for xx := range ow {
						s := 0.0
						if bias != nil {
							s = bias[o]
						}
						for ci := range icg {
							for ky := range op.Kernel[0] {
								for kx := range op.Kernel[1] {
									iy := y*op.Stride[0] - op.Pad[0] + ky*d[0]
									ix := xx*op.Stride[1] - op.Pad[1] + kx*d[1]
									if iy < 0 || iy >= H || ix < 0 || ix >= W {
										continue
									}
									s += wt[((o*icg+ci)*op.Kernel[0]+ky)*op.Kernel[1]+kx] * x.v[((gi*icg+ci)*H+iy)*W+ix]
								}
							}
						}
						out[(o*oh+y)*ow+xx] = s
					}
				}
			}
		case weights.OpPool:
			for c := range C {
				for y := range oh {
					for xx := range ow {
						// Caffe: window clipped to the padded input for the AVE
						// divisor, then to the input for the values.
						hs, ws := y*op.Stride[0]-op.Pad[0], xx*op.Stride[1]-op.Pad[1]
						he, we := min(hs+op.Kernel[0], H+op.Pad[0]), min(ws+op.Kernel[1], W+op.Pad[1])
						size := float64((he - hs) * (we - ws))
						hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
						acc := math.Inf(-1)
						if op.Pool == "ave" {
							acc = 0
						}
						for iy := hs; iy < he; iy++ {
							for ix := ws; ix < we; ix++ {
								v := x.v[(c*H+iy)*W+ix]
								if op.Pool == "ave" {
									acc += v
								} else {
									acc = math.Max(acc, v)
								}
							}
						}
						if op.Pool == "ave" {
							acc /= size
						}
						out[(c*oh+y)*ow+xx] = acc
					}
				}
			}
		case weights.OpEltwise:
			for i := range out {
				acc := 0.0
				for j, name := range op.Inputs {
					v := blobs[name].v[i]
					switch {
					case op.Operation == "sum" && len(op.Coeffs) > 0:
						acc += op.Coeffs[j] * v
					case op.Operation == "sum":
						acc += v
					case j == 0:
						acc = v
					case op.Operation == "prod":
						acc *= v
					default:
						acc = math.Max(acc, v)
					}
				}
				out[i] = acc
			}
		case weights.OpReLU, weights.OpFlatten:
			copy(out, x.v)
		case weights.OpAffine:
			for i := range out {
				out[i] = x.v[i] * wt[i/(H*W)]
				if bias != nil {
					out[i] += bias[i/(H*W)]
				}
			}
		case weights.OpInnerProduct:
			k := len(x.v)
			for n := range out {
				s := 0.0
				if bias != nil {
					s = bias[n]
				}
				for j := range k {
					s += wt[n*k+j] * x.v[j]
				}
				out[n] = s
			}
		case weights.OpSoftmax:
			for p := range H * W {
				mx := math.Inf(-1)
				for c := range C {
					mx = math.Max(mx, x.v[c*H*W+p])
				}
				sum := 0.0
				for c := range C {
					out[c*H*W+p] = math.Exp(x.v[c*H*W+p] - mx)
					sum += out[c*H*W+p]
				}
				for c := range C {
					out[c*H*W+p] /= sum
				}
			}
		case weights.OpConcat:
			out = out[:0]
			for _, name := range op.Inputs {
				out = append(out, blobs[name].v...)
			}
		}
		if op.ReLU || op.Type == weights.OpReLU {
			for i, v := range out {
				if v < 0 {
					out[i] = v * op.NegativeSlope
				}
			}
		}
		blobs[op.Output] = blob{op.OutShape, out}
	}
	return blobs[m.Output].v
}

// f16 decodes binary16 independently of the kernels.
func f16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, f := int(h>>10&0x1f), float64(h&0x3ff)
	if e == 0 {
		return sign * f / 1024 * math.Pow(2, -14)
	}
	return sign * (1 + f/1024) * math.Pow(2, float64(e-15))
}

// compile compiles w's manifest with o.
func compile(t testing.TB, w *weights.Weights, o CompileOptions) *Program {
	t.Helper()
	p, err := Compile(w.Manifest, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run1 runs one input through c and returns the output values.
func run1(c *CPU, in []float32) ([]float32, error) {
	out, err := c.Run(in, 1)
	return out.Values, err
}
