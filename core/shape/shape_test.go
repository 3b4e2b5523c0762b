package shape

import (
	"strings"
	"testing"
)

// The expected sizes are worked out by hand from Caffe's pooling_layer.cpp
// and conv_layer.cpp; each row says which rule it pins down.
func TestPool(t *testing.T) {
	tests := []struct {
		name                   string
		in, kernel, stride, pd [2]int
		ceil                   bool
		want                   [2]int
		err                    string
	}{
		// Issue 8: pad_h only. Width: ceil(5/3)+1 = 3, but its third window
		// would start at 6 = width + pad_w, and pad_h != 0 drops it.
		{"either pad: pad_h drops a width window", [2]int{6, 6}, [2]int{2, 1}, [2]int{1, 3}, [2]int{1, 0}, true, [2]int{7, 2}, ""},
		{"either pad: pad_w drops a height window", [2]int{6, 6}, [2]int{1, 2}, [2]int{3, 1}, [2]int{0, 1}, true, [2]int{2, 7}, ""},
		{"no pad: a window past the input is kept", [2]int{6, 6}, [2]int{2, 1}, [2]int{1, 3}, [2]int{0, 0}, true, [2]int{5, 3}, ""},
		{"no pad, floor", [2]int{6, 6}, [2]int{1, 1}, [2]int{3, 3}, [2]int{0, 0}, false, [2]int{2, 2}, ""},
		{"ResNet pool1, ceil", [2]int{112, 112}, [2]int{3, 3}, [2]int{2, 2}, [2]int{0, 0}, true, [2]int{56, 56}, ""},
		{"ResNet pool1, floor", [2]int{112, 112}, [2]int{3, 3}, [2]int{2, 2}, [2]int{0, 0}, false, [2]int{55, 55}, ""},
		{"ceil with pad, nothing dropped", [2]int{10, 10}, [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}, true, [2]int{6, 6}, ""},
		{"floor with pad", [2]int{10, 10}, [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}, false, [2]int{5, 5}, ""},
		{"ceil with pad, last window dropped", [2]int{5, 5}, [2]int{2, 2}, [2]int{2, 2}, [2]int{1, 1}, true, [2]int{3, 3}, ""},
		{"asymmetric pads, both non-zero", [2]int{13, 11}, [2]int{5, 4}, [2]int{3, 3}, [2]int{2, 1}, true, [2]int{5, 4}, ""},
		{"global pooling", [2]int{7, 7}, [2]int{7, 7}, [2]int{1, 1}, [2]int{0, 0}, true, [2]int{1, 1}, ""},
		{"global pooling, not square", [2]int{3, 9}, [2]int{3, 9}, [2]int{1, 1}, [2]int{0, 0}, false, [2]int{1, 1}, ""},
		// float32(2^24+1) is 2^24, so Caffe gets one output fewer than exact arithmetic.
		{"float32 division, like Caffe", [2]int{1<<24 + 2, 1}, [2]int{1, 1}, [2]int{1, 1}, [2]int{0, 0}, true, [2]int{1<<24 + 1, 1}, ""},
		{"pad not smaller than kernel", [2]int{8, 8}, [2]int{2, 2}, [2]int{1, 1}, [2]int{0, 2}, true, [2]int{}, "smaller than the kernel"},
		{"kernel larger than padded input", [2]int{3, 3}, [2]int{4, 2}, [2]int{2, 1}, [2]int{0, 0}, true, [2]int{}, "larger than the padded height 3"},
		{"zero stride", [2]int{8, 8}, [2]int{2, 2}, [2]int{0, 1}, [2]int{0, 0}, true, [2]int{}, "out of range"},
		{"negative pad", [2]int{8, 8}, [2]int{2, 2}, [2]int{1, 1}, [2]int{-1, 0}, true, [2]int{}, "out of range"},
		{"beyond Caffe's int", [2]int{1 << 31, 1}, [2]int{1, 1}, [2]int{1, 1}, [2]int{0, 0}, true, [2]int{}, "out of range"},
		{"padded beyond Caffe's int", [2]int{1 << 30, 1}, [2]int{1 << 29, 1}, [2]int{1, 1}, [2]int{1 << 29, 0}, true, [2]int{}, "beyond Caffe's int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pool(tt.in, tt.kernel, tt.stride, tt.pd, tt.ceil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Pool = %v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Pool = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestConv(t *testing.T) {
	tests := []struct {
		name                        string
		in, kernel, stride, pd, dil [2]int
		want                        [2]int
		err                         string
	}{
		{"ResNet conv1", [2]int{224, 224}, [2]int{7, 7}, [2]int{2, 2}, [2]int{3, 3}, [2]int{1, 1}, [2]int{112, 112}, ""},
		{"rounds down", [2]int{8, 9}, [2]int{3, 3}, [2]int{2, 2}, [2]int{0, 0}, [2]int{1, 1}, [2]int{3, 4}, ""},
		{"asymmetric kernel, stride and pad", [2]int{5, 7}, [2]int{3, 1}, [2]int{2, 1}, [2]int{1, 0}, [2]int{1, 1}, [2]int{3, 7}, ""},
		{"dilation", [2]int{10, 10}, [2]int{3, 3}, [2]int{1, 1}, [2]int{0, 0}, [2]int{2, 2}, [2]int{6, 6}, ""},
		{"dilation and pad", [2]int{10, 6}, [2]int{3, 3}, [2]int{2, 1}, [2]int{2, 1}, [2]int{2, 3}, [2]int{5, 2}, ""},
		{"extent equals padded input", [2]int{3, 3}, [2]int{3, 3}, [2]int{5, 5}, [2]int{1, 1}, [2]int{2, 2}, [2]int{1, 1}, ""},
		{"extent larger than padded input", [2]int{4, 4}, [2]int{3, 3}, [2]int{1, 1}, [2]int{0, 0}, [2]int{2, 1}, [2]int{}, "kernel extent 5 is larger than the padded height 4"},
		// Caffe would give (3-4)/2+1 = 1 here (division truncating toward zero).
		{"overhang within a stride", [2]int{3, 3}, [2]int{4, 1}, [2]int{2, 1}, [2]int{0, 0}, [2]int{1, 1}, [2]int{}, "larger than the padded height"},
		{"extent beyond Caffe's int", [2]int{8, 8}, [2]int{3, 1}, [2]int{1, 1}, [2]int{0, 0}, [2]int{1 << 30, 1}, [2]int{}, "beyond Caffe's int"},
		{"zero dilation", [2]int{8, 8}, [2]int{3, 3}, [2]int{1, 1}, [2]int{0, 0}, [2]int{0, 1}, [2]int{}, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Conv(tt.in, tt.kernel, tt.stride, tt.pd, tt.dil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Conv = %v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Conv = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
