package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/tools/convert/caffe"
)

// DefaultMeanValues is the per-channel ImageNet mean (B, G, R) used for
// 3-channel 224x224 models when no mean is given (OFFICIAL-WEIGHTS.md: the
// documented substitute for ResNet_mean.binaryproto).
var DefaultMeanValues = []float64{104, 117, 123}

// Options are the converter's inputs: the CLI's flags.
type Options struct {
	Caffemodel string // required
	Prototxt   string // optional deploy definition; without it the caffemodel's own layers are used
	Mean       string // optional mean .binaryproto
	MeanValues []float64
	Scale      *float64 // nil: transform_param.scale of the caffemodel's data layer, else 1
	Resize     int      // 0: 256 for 224x224 inputs, else the input size
	Labels     string   // optional synset_words.txt
	Name       string   // model name; "" = the net's name
	Synthetic  bool     // the weights are random (generated), not trained
	ShardSize  int64    // 0 = weights.MaxShardSize
	Out        string   // required
	Force      bool

	// Progress, when set, is called while reading (stage "read", bytes),
	// writing (stage "write", values) and checking the written model with
	// core's reader (stage "verify", bytes).
	Progress func(stage string, done, total int64)
}

// InputError is a problem with the converter's inputs (files, flags).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Convert reads the files named by o, converts the net and writes the model
// to o.Out. Warnings are in the summary.
func Convert(o Options) (*Summary, error) {
	if o.Caffemodel == "" {
		return nil, &InputError{"no -caffemodel given"}
	}
	if o.Out == "" {
		return nil, &InputError{"no -out directory given"}
	}
	if o.Mean != "" && len(o.MeanValues) > 0 {
		return nil, &InputError{"give -mean or -mean-values, not both"}
	}
	var warnings []string
	start := time.Now()
	trained, digest, err := readModel(o.Caffemodel, o.Progress)
	if err != nil {
		return nil, err
	}
	net := trained
	if o.Prototxt != "" {
		deploy, err := caffe.ParsePrototxtFile(o.Prototxt)
		if err != nil {
			return nil, err
		}
		if net, err = caffe.Merge(deploy, trained); err != nil {
			return nil, err
		}
	}
	g, err := Lower(net)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", netFile(o), err)
	}
	g.Optimize()

	meta := Meta{
		Model:     o.Name,
		Synthetic: o.Synthetic,
		Source: weights.Source{
			Caffemodel:       filepath.Base(o.Caffemodel),
			CaffemodelSHA256: digest,
			Converter:        ConverterVersion,
		},
	}
	if meta.Model == "" {
		meta.Model = net.Name
	}
	if meta.Model == "" {
		meta.Model = strings.TrimSuffix(filepath.Base(o.Caffemodel), filepath.Ext(o.Caffemodel))
	}
	if o.Prototxt != "" {
		meta.Source.Prototxt = filepath.Base(o.Prototxt)
	}
	pp, mean, warn, err := preprocessing(o, g.Input, trained, net)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, warn...)
	meta.Preprocess, meta.Mean = pp, mean
	if o.Mean != "" {
		meta.Source.Mean = filepath.Base(o.Mean)
	}
	if o.Labels != "" {
		ids, names, err := readLabels(o.Labels)
		if err != nil {
			return nil, err
		}
		if classes := outputChannels(g); len(names) != classes {
			return nil, &InputError{fmt.Sprintf("%s has %d labels but the net's output %q has %d classes",
				o.Labels, len(names), g.Output, classes)}
		}
		meta.Labels, meta.LabelIDs = names, ids
		if allEmpty(ids) {
			meta.LabelIDs = nil
		}
	}
	readTime := time.Since(start)
	wo := WriteOptions{ShardSize: o.ShardSize, Force: o.Force}
	if o.Progress != nil {
		wo.Progress = func(done, total int64) { o.Progress("write", done, total) }
		wo.VerifyProgress = func(done, total int64) { o.Progress("verify", done, total) }
	}
	sum, err := Write(o.Out, g, meta, wo)
	if err != nil {
		return nil, err
	}
	sum.Warnings = append(warnings, sum.Warnings...)
	sum.ReadTime = readTime
	return sum, nil
}

func netFile(o Options) string {
	if o.Prototxt != "" {
		return o.Prototxt
	}
	return o.Caffemodel
}

func allEmpty(s []string) bool {
	for _, x := range s {
		if x != "" {
			return false
		}
	}
	return true
}

func outputChannels(g *Graph) int {
	for _, n := range g.Nodes {
		if n.Op.Output == g.Output {
			return n.Op.OutShape[0]
		}
	}
	return 0
}

// progressReader counts the bytes read through it.
type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(stage string, done, total int64)
	next  int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && (p.done >= p.next || err != nil) {
		p.fn("read", p.done, p.total)
		p.next = p.done + p.total/200 + 1
	}
	return n, err
}

// readModel reads the caffemodel and, concurrently (a second reader of the
// same file, from the page cache: off the decoder's critical path), hashes it.
func readModel(path string, progress func(string, int64, int64)) (*caffe.Net, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if fi.IsDir() {
		return nil, "", &InputError{path + " is a directory, not a .caffemodel"}
	}
	type result struct {
		sum string
		err error
	}
	hashed := make(chan result, 1)
	go func() {
		g, err := os.Open(path)
		if err != nil {
			hashed <- result{err: err}
			return
		}
		defer g.Close()
		h := sha256.New()
		_, err = io.Copy(h, g)
		hashed <- result{hex.EncodeToString(h.Sum(nil)), err}
	}()
	pr := &progressReader{r: f, total: fi.Size(), fn: progress}
	net, err := caffe.ReadModel(pr, fi.Size())
	hr := <-hashed
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if hr.err != nil {
		return nil, "", hr.err
	}
	return net, hr.sum, nil
}

func readLabels(path string) (ids, names []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	ids, names, err = caffe.ReadLabels(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return ids, names, nil
}

// transform finds the transform_param of a data layer: the trained net's
// (the caffemodel's, where Caffe stores LeNet's 0.00390625) first, then the
// deploy net's. A TEST-phase data layer wins over a TRAIN-phase one.
func transform(nets ...*caffe.Net) *caffe.TransformParam {
	for _, n := range nets {
		if n == nil {
			continue
		}
		var found *caffe.TransformParam
		for _, l := range n.Layers {
			if l.Transform == nil {
				continue
			}
			if found == nil || l.Phase == caffe.PhaseTest {
				found = l.Transform
			}
		}
		if found != nil {
			return found
		}
	}
	return nil
}

// preprocessing decides the manifest's preprocessing and loads the mean image.
func preprocessing(o Options, in weights.Input, trained, net *caffe.Net) (weights.Preprocess, []float32, []string, error) {
	var pp weights.Preprocess
	var warn []string
	switch in.Channels {
	case 3:
		pp.ChannelOrder = "BGR"
	case 1:
		pp.ChannelOrder = "GRAY"
	default:
		return pp, nil, nil, &InputError{fmt.Sprintf("the input %q has %d channels: residual takes images with 3 (BGR) or 1 (gray)",
			in.Name, in.Channels)}
	}
	pp.Resize = o.Resize
	if pp.Resize == 0 {
		pp.Resize = max(in.Height, in.Width)
		if in.Height == 224 && in.Width == 224 {
			pp.Resize = 256 // the authors' protocol: shorter side 256, center 224 crop
		}
	}
	if pp.Resize < max(in.Height, in.Width) {
		return pp, nil, nil, &InputError{fmt.Sprintf("-resize %d is smaller than the input %dx%d", pp.Resize, in.Height, in.Width)}
	}
	tp := transform(trained, net)
	pp.Scale = 1
	switch {
	case o.Scale != nil:
		pp.Scale = *o.Scale
	case tp != nil && tp.HasScale:
		pp.Scale = tp.Scale
	}
	if pp.Scale == 0 {
		return pp, nil, nil, &InputError{"scale 0 would zero every input"}
	}
	expand := func(v []float64, what string) ([]float64, error) {
		switch len(v) {
		case in.Channels:
			return append([]float64(nil), v...), nil
		case 1:
			out := make([]float64, in.Channels)
			for i := range out {
				out[i] = v[0]
			}
			return out, nil
		}
		return nil, &InputError{fmt.Sprintf("%s has %d values; the input has %d channels: give %d values (or 1 for all)",
			what, len(v), in.Channels, in.Channels)}
	}
	var mean []float32
	var err error
	switch {
	case o.Mean != "":
		mean, err = readMean(o.Mean, in)
		if err != nil {
			return pp, nil, nil, err
		}
	case len(o.MeanValues) > 0:
		if pp.MeanValues, err = expand(o.MeanValues, "-mean-values"); err != nil {
			return pp, nil, nil, err
		}
	case tp != nil && len(tp.MeanValue) > 0:
		if pp.MeanValues, err = expand(tp.MeanValue, "the data layer's transform_param mean_value"); err != nil {
			return pp, nil, nil, err
		}
	default:
		if tp != nil && tp.MeanFile != "" {
			warn = append(warn, fmt.Sprintf("the data layer names the mean file %q: pass it with -mean (not used)", tp.MeanFile))
		}
		if in.Channels == 3 && in.Height == 224 && in.Width == 224 {
			pp.MeanValues = append([]float64(nil), DefaultMeanValues...)
			warn = append(warn, "no mean given: using the per-channel ImageNet mean B 104, G 117, R 123 "+
				"(pass -mean ResNet_mean.binaryproto for the authors' mean image)")
		}
	}
	return pp, mean, warn, nil
}

// MeanError is a mean file that does not fit the net's input.
type MeanError struct {
	File string
	Msg  string
}

func (e *MeanError) Error() string { return fmt.Sprintf("mean %s: %s", e.File, e.Msg) }

// readMean reads a mean .binaryproto and center-crops it to the input size
// (Caffe's test-time crop: offset (size - crop)/2, rounded down).
func readMean(path string, in weights.Input) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b, err := caffe.ReadBlobProto(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return CropMean(b, in, path)
}

// CropMean center-crops a mean blob (1 x C x H x W or C x H x W) to the
// input's size; a mean smaller than the input is an error.
func CropMean(b *caffe.Blob, in weights.Input, file string) ([]float32, error) {
	s := b.Shape
	if len(s) == 4 && s[0] == 1 {
		s = s[1:]
	}
	if len(s) != 3 {
		return nil, &MeanError{file, fmt.Sprintf("has shape %v, want 1 x C x H x W", b.Shape)}
	}
	c, h, w := s[0], s[1], s[2]
	if b.Len() != c*h*w {
		return nil, &MeanError{file, fmt.Sprintf("has shape %v but %d values", b.Shape, b.Len())}
	}
	if c != in.Channels {
		return nil, &MeanError{file, fmt.Sprintf("has %d channels, the input has %d", c, in.Channels)}
	}
	if h < in.Height || w < in.Width {
		return nil, &MeanError{file, fmt.Sprintf("is %dx%d, smaller than the input %dx%d", h, w, in.Height, in.Width)}
	}
	y0, x0 := (h-in.Height)/2, (w-in.Width)/2
	out := make([]float32, 0, c*in.Height*in.Width)
	for ch := 0; ch < c; ch++ {
		for y := y0; y < y0+in.Height; y++ {
			for x := x0; x < x0+in.Width; x++ {
				out = append(out, float32(b.At((ch*h+y)*w+x)))
			}
		}
	}
	return out, nil
}
