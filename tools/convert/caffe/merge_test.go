package caffe

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMergeLeNet(t *testing.T) {
	deploy, err := ParsePrototxt(bytes.NewReader(readCaffeFile(t, "lenet/lenet.prototxt")))
	if err != nil {
		t.Fatal(err)
	}
	file := readCaffeFile(t, "lenet/lenet_iter_10000.caffemodel")
	trained, err := ReadModel(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(deploy, trained)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(deploy.Layers) || m.Name != "LeNet" {
		t.Fatalf("merged %d layers named %q, want the deploy's %d", len(m.Layers), m.Name, len(deploy.Layers))
	}
	trainedByName := map[string]*Layer{}
	for _, l := range trained.Layers {
		trainedByName[l.Name] = l
	}
	for i, l := range m.Layers {
		d := deploy.Layers[i]
		if l.Name != d.Name || l.Type != d.Type || !reflect.DeepEqual(l.Bottoms, d.Bottoms) || l.Conv != d.Conv {
			t.Errorf("layer %d %s/%s is not the deploy's %s/%s", i, l.Name, l.Type, d.Name, d.Type)
		}
		want := 0
		if tl := trainedByName[l.Name]; tl != nil {
			want = len(tl.Blobs)
			for j := range tl.Blobs {
				if l.Blobs[j] != tl.Blobs[j] {
					t.Errorf("%s blob %d is not the trained blob", l.Name, j)
				}
			}
		}
		if len(l.Blobs) != want {
			t.Errorf("%s has %d blobs, want %d", l.Name, len(l.Blobs), want)
		}
		if l.Type == "Data" || l.Type == "SoftmaxWithLoss" {
			t.Errorf("training layer %s in the merged net", l.Name)
		}
	}
	if len(deploy.Layers[1].Blobs) != 0 {
		t.Error("Merge modified the deploy net")
	}
	if got := m.Layers[1].Blobs[0].Shape; !equalInts(got, []int{20, 1, 5, 5}) {
		t.Errorf("conv1 weights %v", got)
	}
}

func TestMergeMissingLayer(t *testing.T) {
	trained := &Net{Layers: []*Layer{
		{Name: "conv", Type: "Convolution", Phase: PhaseAny, Blobs: []*Blob{{Shape: []int{1}, Data: []float32{1}}}},
	}}
	tests := []struct {
		name   string
		layers []*Layer
		want   string // "" = no error
	}{
		{"all present", []*Layer{{Name: "conv", Type: "Convolution"}, {Name: "relu", Type: "ReLU"}}, ""},
		{"renamed conv", []*Layer{{Name: "conv_x", Type: "Convolution"}}, `deploy layer "conv_x" (Convolution)`},
		{"missing fc", []*Layer{{Name: "fc", Type: "InnerProduct"}}, `"fc" (InnerProduct)`},
		{"missing bn", []*Layer{{Name: "bn", Type: "BatchNorm"}}, `"bn" (BatchNorm)`},
		{"missing scale", []*Layer{{Name: "sc", Type: "Scale", Bottoms: []string{"x"}}}, `"sc" (Scale)`},
		{"two-bottom scale needs no blobs", []*Layer{{Name: "sc", Type: "Scale", Bottoms: []string{"x", "y"}}}, ""},
		{"missing pooling is fine", []*Layer{{Name: "p", Type: "Pooling"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Merge(&Net{Layers: tt.layers}, trained)
			if tt.want == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			var me *MissingLayerError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a *MissingLayerError containing %q", err, tt.want)
			}
		})
	}
}

func TestMergePrefersLayerWithBlobs(t *testing.T) {
	b := []*Blob{{Shape: []int{1}, Data: []float32{2}}}
	trained := &Net{Name: "t", Layers: []*Layer{{Name: "c", Type: "Convolution"}, {Name: "c", Type: "Convolution", Blobs: b}}}
	m, err := Merge(&Net{Layers: []*Layer{{Name: "c", Type: "Convolution"}}}, trained)
	if err != nil || len(m.Layers[0].Blobs) != 1 || m.Name != "t" {
		t.Errorf("%v %+v", err, m)
	}
}

func TestReadLabels(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		ids, names []string
		err        string
	}{
		{"synset lines", "n01440764 tench, Tinca tinca\nn01443537 goldfish\n",
			[]string{"n01440764", "n01443537"}, []string{"tench, Tinca tinca", "goldfish"}, ""},
		{"no final newline, CRLF", "n01440764 tench\r\nn01443537 goldfish",
			[]string{"n01440764", "n01443537"}, []string{"tench", "goldfish"}, ""},
		{"lines without ids", "cat\ndog, puppy\n", []string{"", ""}, []string{"cat", "dog, puppy"}, ""},
		{"mixed", "n01440764 tench\nbackground\n", []string{"n01440764", ""}, []string{"tench", "background"}, ""},
		{"trailing empty lines", "a\nb\n\n\n", []string{"", ""}, []string{"a", "b"}, ""},
		{"id only", "n01440764\n", []string{"n01440764"}, []string{""}, ""},
		{"empty line inside", "a\n\nb\n", nil, nil, "line 2 is empty"},
		{"empty file", "", nil, nil, "holds no labels"},
		{"only blank lines", "\n \n\n", nil, nil, "holds no labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, names, err := ReadLabels(strings.NewReader(tt.src))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(ids, tt.ids) || !reflect.DeepEqual(names, tt.names) {
				t.Errorf("got %q %q %v, want %q %q", ids, names, err, tt.ids, tt.names)
			}
		})
	}
}
