package caffe

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestPrototxtSyntax(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, n *Net)
	}{
		{"comments and both message forms", `
# a comment
name: "n" # trailing comment
layer: { name: "a" type: "ReLU" }  # name: { } form
layer < name: "b"; type: "ReLU", >  # angle brackets and separators
`, func(t *testing.T, n *Net) {
			if n.Name != "n" || len(n.Layers) != 2 || n.Layers[0].Name != "a" || n.Layers[1].Name != "b" {
				t.Errorf("%s", dump(n))
			}
		}},
		{"strings and escapes", `name: 'single' "\"d\"\n\t\\\x41\101\u00e9\?"
layer { name: "" type: 'x' }`, func(t *testing.T, n *Net) {
			if want := "single\"d\"\n\t\\AAé?"; n.Name != want {
				t.Errorf("name %q, want %q", n.Name, want)
			}
		}},
		{"numbers", `layer { name: "bn" type: "BatchNorm"
  batch_norm_param { eps: 1e-5 moving_average_fraction: .5 use_global_stats: false }
  relu_param { negative_slope: -0.25 }
  eltwise_param { coeff: 1 coeff: -2.5e+2 coeff: 1.0f coeff: -inf }
  convolution_param { num_output: 0x10 pad: [1, 2] axis: -1 }
  transform_param { scale: 0.00390625 crop_size: 227 mean_value: 104 mean_value: 117.5 }
}`, func(t *testing.T, n *Net) {
			l := n.Layers[0]
			if l.BatchNorm.Eps != float64(float32(1e-5)) || l.BatchNorm.MovingAvgFraction != 0.5 ||
				*l.BatchNorm.UseGlobalStats != false {
				t.Errorf("batch norm %+v", l.BatchNorm)
			}
			if l.ReLU.NegativeSlope != -0.25 {
				t.Errorf("relu %+v", l.ReLU)
			}
			if want := []float64{1, -250, 1, math.Inf(-1)}; !reflect.DeepEqual(l.Eltwise.Coeff, want) {
				t.Errorf("coeff %v, want %v", l.Eltwise.Coeff, want)
			}
			if c := l.Conv; c.NumOutput != 16 || !equalInts(c.Pad, []int{1, 2}) || c.Axis != -1 {
				t.Errorf("conv %+v", c)
			}
			if tp := l.Transform; tp.Scale != 0.00390625 || !tp.HasScale || tp.CropSize != 227 ||
				!reflect.DeepEqual(tp.MeanValue, []float64{104, 117.5}) {
				t.Errorf("transform %+v", tp)
			}
		}},
		{"enums", `layer { name: "p" type: "Pooling" pooling_param { pool: AVE round_mode: FLOOR global_pooling: true }
  eltwise_param { operation: PROD } include { phase: TEST } }
layer { name: "q" type: "Pooling" pooling_param { pool: 2 } exclude { phase: TEST } }`, func(t *testing.T, n *Net) {
			p := n.Layers[0]
			if p.Pooling.Pool != PoolAve || p.Pooling.RoundMode != RoundFloor || !p.Pooling.GlobalPooling ||
				p.Eltwise.Operation != EltwiseProd || p.Phase != PhaseTest {
				t.Errorf("%+v %+v %+v", p, p.Pooling, p.Eltwise)
			}
			if q := n.Layers[1]; q.Pooling.Pool != PoolStochastic || q.Phase != PhaseTrain {
				t.Errorf("%+v %+v", q, q.Pooling)
			}
		}},
		{"legacy inputs", `input: "data" input_dim: 1 input_dim: 3 input_dim: 224 input_dim: 224
input: "im_info" input_dim: 1 input_dim: 3 input_dim: 1 input_dim: 1
layer { name: "r" type: "ReLU" bottom: "data" top: "data" }`, func(t *testing.T, n *Net) {
			want := []Input{{"data", []int{1, 3, 224, 224}}, {"im_info", []int{1, 3, 1, 1}}}
			if !reflect.DeepEqual(n.Inputs, want) {
				t.Errorf("inputs %+v", n.Inputs)
			}
		}},
		{"input_shape", `input: "data" input_shape { dim: 10 dim: 3 dim: 227 dim: 227 }
layer { name: "r" type: "ReLU" }`, func(t *testing.T, n *Net) {
			if want := []Input{{"data", []int{10, 3, 227, 227}}}; !reflect.DeepEqual(n.Inputs, want) {
				t.Errorf("inputs %+v", n.Inputs)
			}
		}},
		{"unknown fields are ignored", `force_backward: true state { phase: TEST stage: "x" }
layer { name: "c" type: "Convolution" param { lr_mult: 1 } convolution_param { num_output: 3
  weight_filler { type: "xavier" std: 0.01 } engine: CUDNN kernel_size: 1 } loss_weight: 1 }`,
			func(t *testing.T, n *Net) {
				if c := n.Layers[0].Conv; c.NumOutput != 3 || !equalInts(c.KernelSize, []int{1}) {
					t.Errorf("conv %+v", c)
				}
			}},
		{"bool spellings", `layer { name: "c" type: "Convolution" convolution_param { bias_term: 0 }
  inner_product_param { bias_term: t transpose: True } }`, func(t *testing.T, n *Net) {
			l := n.Layers[0]
			if l.Conv.BiasTerm || !l.InnerProd.BiasTerm || !l.InnerProd.Transpose {
				t.Errorf("%+v %+v", l.Conv, l.InnerProd)
			}
		}},
		{"blobs in text", `layer { name: "s" type: "Scale" blobs { shape { dim: 2 } data: [1.5, -2] }
  blobs { num: 1 channels: 1 height: 1 width: 1 double_data: 0.1 } }`, func(t *testing.T, n *Net) {
			b := n.Layers[0].Blobs
			if len(b) != 2 || !reflect.DeepEqual(b[0].Data, []float32{1.5, -2}) ||
				!reflect.DeepEqual(b[1].Data64, []float64{0.1}) || !equalInts(b[1].Shape, []int{1, 1, 1, 1}) {
				t.Errorf("blobs %+v %+v", b[0], b[1])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParsePrototxt(strings.NewReader(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, n)
		})
	}
}

func TestPrototxtErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		want      string
	}{
		{"unterminated string", "name: \"abc\nlayer {}", 1, 7, "unterminated string"},
		{"missing brace", "layer {\n  name: \"a\"\n", 3, 1, `missing "}" for the "{" opened at 1:7`},
		{"stray brace", "}\n", 1, 1, `expected a field name, found "}"`},
		{"missing value", "layer { name: }", 1, 15, `expected a value for "name"`},
		{"missing colon", "name \"x\"", 1, 6, `expected ":" or "{" after "name"`},
		{"unknown enum", "layer {\n pooling_param { pool: MEDIAN } }", 2, 24, "unknown value MEDIAN (one of AVE, MAX, STOCHASTIC)"},
		{"string for int", "layer { convolution_param { num_output: \"64\" } }", 1, 41, "expected an integer"},
		{"negative uint32", "layer { convolution_param { num_output: -1 } }", 1, 41, "out of range"},
		{"int for string", "layer { name: 5 }", 1, 15, "expected a quoted string"},
		{"message for scalar", "layer { name { } }", 1, 9, "takes a value, not a { } message"},
		{"scalar for message", "layer { convolution_param: 3 }", 1, 28, "is a message"},
		{"bad bool", "layer { inner_product_param { bias_term: yes } }", 1, 42, "expected true or false"},
		{"bad float", "layer { relu_param { negative_slope: 1.2.3 } }", 1, 38, "expected a number"},
		{"bad escape", `name: "a\qb"`, 1, 9, `unknown escape \q`},
		{"bad character", "layer { @ }", 1, 9, "unexpected character '@'"},
		{"lone minus", "layer { name: - }", 1, 15, `"-" is not a number`},
		{"input_dim count", "input: \"data\"\ninput_dim: 1\nlayer {}", 1, 1, "1 inputs need 4 input_dim values"},
		{"dims without input", "input_dim: 1\nlayer {}", 1, 1, "without input names"},
		{"dim out of range", "input: \"d\" input_shape { dim: -3 } layer {}", 1, 31, "out of range"},
		{"columns count runes", "name: \"ééé\" @", 1, 13, "unexpected character"},
		{"list not closed", "layer { convolution_param { pad: [1, 2 } }", 1, 40, `expected "," or "]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePrototxt(strings.NewReader(tt.src))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want a *SyntaxError", err, err)
			}
			if se.Line != tt.line || se.Col != tt.col || !strings.Contains(se.Msg, tt.want) {
				t.Errorf("got %d:%d %q, want %d:%d containing %q", se.Line, se.Col, se.Msg, tt.line, tt.col, tt.want)
			}
		})
	}
}

func TestRepeatedParamMessagesMerge(t *testing.T) {
	n, err := ParsePrototxt(strings.NewReader(`layer { name: "c" type: "Convolution"
  convolution_param { num_output: 8 } convolution_param { kernel_size: 3 } }`))
	if err != nil {
		t.Fatal(err)
	}
	if c := n.Layers[0].Conv; c.NumOutput != 8 || !equalInts(c.KernelSize, []int{3}) || !c.BiasTerm {
		t.Errorf("conv %+v, want both messages merged over the defaults", c)
	}
}
