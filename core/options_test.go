package core

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// TestParseClassifyOptions: the options as every front end spells them.
func TestParseClassifyOptions(t *testing.T) {
	for _, tc := range []struct {
		query  string
		want   ClassifyOptions
		option string // the OptionError's option, "" for success
	}{
		{"", ClassifyOptions{}, ""},
		{"top=3&crops=10", ClassifyOptions{Top: 3, Crops: 10}, ""},
		{"top=%201000000%20", ClassifyOptions{Top: 1000000}, ""}, // more than the classes: all of them
		{"cam=1&cam_classes=4,7", ClassifyOptions{CAM: true, CAMClasses: []int{4, 7}}, ""},
		{"cam_classes=2", ClassifyOptions{CAM: true, CAMClasses: []int{2}}, ""},
		{"cam=true&cam=false", ClassifyOptions{CAM: true}, ""}, // the first value counts
		{"cam=0", ClassifyOptions{}, ""},
		{"top=0", ClassifyOptions{}, OptTop},
		{"top=-2", ClassifyOptions{}, OptTop},
		{"top=", ClassifyOptions{}, OptTop},
		{"top=5x", ClassifyOptions{}, OptTop},
		{"top=99999999999999999999999", ClassifyOptions{}, OptTop},
		{"crops=5", ClassifyOptions{}, OptCrops},
		{"crops=0", ClassifyOptions{}, OptCrops},
		{"crops=ten", ClassifyOptions{}, OptCrops},
		{"cam=maybe", ClassifyOptions{}, OptCAM},
		{"cam_classes=1,,2", ClassifyOptions{}, OptCAMClasses},
		{"cam_classes=-1", ClassifyOptions{}, OptCAMClasses},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseClassifyOptions(func(name string) (string, bool) {
			v, ok := q[name]
			if !ok {
				return "", false
			}
			return v[0], true
		})
		var oe *OptionError
		switch {
		case tc.option == "" && err != nil:
			t.Errorf("%q: %v", tc.query, err)
		case tc.option == "" && !reflect.DeepEqual(got, tc.want):
			t.Errorf("%q: %+v, want %+v", tc.query, got, tc.want)
		case tc.option != "" && (!errors.As(err, &oe) || oe.Option != tc.option || KindOf(err) != KindOption):
			t.Errorf("%q: error %v, want an option error for %s", tc.query, err, tc.option)
		}
	}
}

// TestKindOf: every error core returns has the kind front ends act on.
func TestKindOf(t *testing.T) {
	m := openTiny(t, 1, Options{Threads: 1})
	_, badImage := m.ClassifyBytes([]byte("not an image"), ClassifyOptions{})
	_, badOption := m.ClassifyBytes(nil, ClassifyOptions{Crops: 3})
	_, tooSmall := m.ClassifyImage(testImage(1, 9000, 0), ClassifyOptions{}) // resizes to more than the pixel cap
	fsys := buildFS(t, tinyResNet(1))
	broken := fsys["shard-000.bin"]
	broken.Data = append([]byte(nil), broken.Data...)
	broken.Data[0] ^= 1
	fsys["shard-000.bin"] = broken
	_, badShard := Open(fsys, Options{})
	_, badManifest := Open(fstest.MapFS{weights.ManifestFile: {Data: []byte(`{"format": "residual-weights", "version": 99}`)}}, Options{})
	m.Close()
	_, closed := m.ClassifyImage(testImage(30, 30, 0), ClassifyOptions{})
	for _, tc := range []struct {
		err    error
		kind   Kind
		status int
	}{
		{badImage, KindImage, 400},
		{badOption, KindOption, 400},
		{tooSmall, KindImage, 400},
		{fmt.Errorf("wrapped: %w", &preprocess.ImageError{Kind: preprocess.ErrTooLarge}), KindTooLarge, 413},
		{badShard, KindShard, 503},
		{badManifest, KindModel, 503},
		{closed, KindClosed, 503},
		{&InternalError{Value: "boom"}, KindInternal, 500},
		{errors.New("anything else"), KindInternal, 500},
	} {
		if got := KindOf(tc.err); got != tc.kind || got.HTTPStatus() != tc.status {
			t.Errorf("KindOf(%v) = %q (%d), want %q (%d)", tc.err, got, got.HTTPStatus(), tc.kind, tc.status)
		}
	}
	if KindOf(nil) != "" {
		t.Error("KindOf(nil) is not empty")
	}
}
