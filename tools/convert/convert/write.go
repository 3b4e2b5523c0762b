package convert

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/residual-go/residual/core/weights"
)

// ConverterVersion goes into the manifest's source.converter.
const ConverterVersion = "residual-convert 1.0"

// Meta is what the manifest holds besides the graph and the tensors.
type Meta struct {
	Model      string
	Synthetic  bool
	Source     weights.Source
	Preprocess weights.Preprocess // MeanTensor is set by Write when Mean is given
	Labels     []string
	LabelIDs   []string
	// Mean is the mean image, Channels x Height x Width of the input, stored
	// as the float32 tensor "mean" (nil: Preprocess.MeanValues or no mean).
	Mean []float32
}

// WriteOptions control the output.
type WriteOptions struct {
	ShardSize int64 // bytes per shard at most; 0 means weights.MaxShardSize, more is refused
	Force     bool  // replace a non-empty output directory
	// Progress, when set, is called after every tensor with the values written so far and in all.
	Progress func(done, total int64)
	// VerifyProgress, when set, is called as the check of the written model
	// with core's reader advances, with the shard bytes checked so far and in all.
	VerifyProgress func(done, total int64)
}

// TensorSummary is one stored tensor with its rounding report.
type TensorSummary struct {
	Name  string
	Shape []int
	RoundReport
}

// Summary describes a written model.
type Summary struct {
	Manifest *weights.Manifest
	LayersIn int
	Ops      int
	Params   int64 // values in all stored tensors except the mean
	Bytes    int64 // bytes in all shards
	Tensors  []TensorSummary
	Worst    TensorSummary // the float16 tensor with the largest relative rounding error
	// WorstNormal: the float16 tensor with the largest relative rounding
	// error among values in float16's normal range (at most 2^-11).
	WorstNormal TensorSummary
	Flushed     int // values flushed to zero, in all tensors
	Subnormal   int // values stored as float16 subnormals, in all tensors
	// ReadTime: reading and checking the inputs (Convert only); WriteTime:
	// folding, rounding, writing and hashing the output.
	ReadTime, WriteTime time.Duration
	Warnings            []string // things the user should know; nothing fatal
}

// ShardSizeError: -shard-size is out of range or too small for a tensor.
type ShardSizeError struct {
	Size   int64
	Tensor string // "" when the size itself is out of range
	Need   int64
}

func (e *ShardSizeError) Error() string {
	if e.Tensor == "" {
		return fmt.Sprintf("shard size %d is out of range: it must be between 1 and %d bytes (25 MiB, the Cloudflare asset limit)",
			e.Size, weights.MaxShardSize)
	}
	return fmt.Sprintf("tensor %q needs %d bytes, more than the shard size %d: raise -shard-size (at most %d)",
		e.Tensor, e.Need, e.Size, weights.MaxShardSize)
}

// OutputError: the output directory exists and may not be replaced, or cannot be created.
type OutputError struct {
	Dir string
	Msg string
}

func (e *OutputError) Error() string { return fmt.Sprintf("output %s: %s", e.Dir, e.Msg) }

// VerifyError: the model written does not pass core's reader
// ([weights.Verify]), so it was removed instead of renamed into place. It is
// a converter bug, or a net beyond core's limits (weights.MaxDim, ...).
type VerifyError struct {
	Dir string
	Err error // from weights.Verify
}

func (e *VerifyError) Error() string {
	msg := e.Err.Error()
	var fe *weights.FormatError
	if errors.As(e.Err, &fe) { // without the reader's advice to re-run the converter
		msg = fe.File + ": " + fe.Msg
	}
	return fmt.Sprintf("output %s: core would refuse the model written (%s), so nothing was kept: "+
		"the net is beyond what residual runs, or this is a converter bug", e.Dir, msg)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Write writes g (optimized) and meta into the directory out: manifest.json
// and shard-000.bin, ..., atomically. Everything goes into a temporary
// directory next to out, checked there with core's reader
// ([weights.Verify]: the manifest validated, every shard's sha256) and
// renamed to out at the end; on any error, a failed check included
// ([*VerifyError]), it is removed and out is untouched. An existing non-empty out is refused unless
// opt.Force, which replaces it.
func Write(out string, g *Graph, meta Meta, opt WriteOptions) (*Summary, error) {
	if !g.optimized {
		g.Optimize()
	}
	limit := opt.ShardSize
	if limit == 0 {
		limit = weights.MaxShardSize
	}
	if limit < 1 || limit > weights.MaxShardSize {
		return nil, &ShardSizeError{Size: limit}
	}
	in := g.Input
	if meta.Mean != nil && len(meta.Mean) != in.Channels*in.Height*in.Width {
		return nil, fmt.Errorf("mean image has %d values, the input %dx%dx%d needs %d",
			len(meta.Mean), in.Channels, in.Height, in.Width, in.Channels*in.Height*in.Width)
	}
	var sum *Summary
	start := time.Now()
	err := atomicDir(out, opt.Force, func(dir string) error {
		var err error
		if sum, err = writeInto(dir, g, meta, limit, opt.Progress); err != nil {
			return err
		}
		// The writer proves its output with the reader: core's own code parses
		// and validates the manifest and checks every shard's size and sha256,
		// before the rename makes the model visible.
		if _, err := weights.Verify(os.DirFS(dir), weights.ReadOptions{Progress: opt.VerifyProgress}); err != nil {
			return &VerifyError{Dir: out, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sum.WriteTime = time.Since(start)
	return sum, nil
}

func writeInto(dir string, g *Graph, meta Meta, limit int64, progress func(done, total int64)) (*Summary, error) {
	m := &weights.Manifest{
		Format:     weights.FormatName,
		Version:    weights.FormatVersion,
		Model:      meta.Model,
		Synthetic:  meta.Synthetic,
		Source:     meta.Source,
		Input:      g.Input,
		Preprocess: meta.Preprocess,
		Output:     g.Output,
		Labels:     meta.Labels,
		LabelIDs:   meta.LabelIDs,
	}
	if m.Source.Converter == "" {
		m.Source.Converter = ConverterVersion
	}
	sum := &Summary{Manifest: m, LayersIn: g.LayersIn, Ops: len(g.Nodes)}
	sum.Worst.MaxRelIndex, sum.WorstNormal.MaxRelIndex = -1, -1
	for _, n := range g.Nodes {
		m.Ops = append(m.Ops, n.Op)
	}
	var total int64
	for _, name := range g.tensorList {
		total += int64(g.tensors[name].size())
	}
	sw := &shardWriter{dir: dir, limit: limit}
	defer sw.abort()
	var f64 []float64
	var buf []byte
	var done int64
	var flushedIn int
	var mostFlushed TensorSummary
	put := func(name string, shape []int, vals []float64, forceF32 bool) error {
		var rep RoundReport
		if !forceF32 {
			buf = grow(buf, 2*len(vals))
			rep = encode(buf, vals, false)
		}
		if over := rep.Overflow; forceF32 || over > 0 {
			buf = grow(buf, 4*len(vals))
			rep = encode(buf, vals, true)
			for i, x := range vals {
				if math.Abs(x) > math.MaxFloat32 {
					return fmt.Errorf("tensor %q value %d is %g, beyond float32", name, i, x)
				}
			}
			if over > 0 {
				rep.Overflow = over
				sum.Warnings = append(sum.Warnings, fmt.Sprintf(
					"tensor %q has %d values beyond float16's range (|x| > %d): stored as float32", name, over, MaxF16))
			}
		}
		shard, off, err := sw.place(name, int64(len(buf)))
		if err != nil {
			return err
		}
		if err := sw.write(buf); err != nil {
			return err
		}
		dtype := weights.DTypeF16
		if rep.DType == "f32" {
			dtype = weights.DTypeF32
		}
		m.Tensors = append(m.Tensors, weights.Tensor{
			Name: name, Shape: shape, DType: dtype, Shard: shard, Offset: off, Length: int64(len(buf)),
			MaxRelError: rep.MaxRelError, Flushed: rep.Flushed,
		})
		ts := TensorSummary{Name: name, Shape: shape, RoundReport: rep}
		sum.Tensors = append(sum.Tensors, ts)
		sum.Flushed += rep.Flushed
		if rep.Flushed > 0 {
			flushedIn++
			if rep.Flushed > mostFlushed.Flushed {
				mostFlushed = ts
			}
		}
		sum.Subnormal += rep.Subnormal
		if rep.DType == "f16" && rep.MaxRelError > sum.Worst.MaxRelError {
			sum.Worst = ts
		}
		if rep.DType == "f16" && rep.MaxRelErrorNormal > sum.WorstNormal.MaxRelErrorNormal {
			sum.WorstNormal = ts
		}
		return nil
	}
	if meta.Mean != nil {
		in := g.Input
		f64 = growF(f64, len(meta.Mean))
		for i, v := range meta.Mean {
			f64[i] = float64(v)
		}
		if err := put(MeanTensor, []int{in.Channels, in.Height, in.Width}, f64, true); err != nil {
			return nil, err
		}
		m.Preprocess.MeanTensor = MeanTensor
		m.Preprocess.MeanValues = nil
	}
	for _, name := range g.tensorList {
		r := g.tensors[name]
		n := r.size()
		f64 = growF(f64, n)
		r.fill(f64)
		if err := put(name, r.shape(), f64, false); err != nil {
			return nil, err
		}
		sum.Params += int64(n)
		done += int64(n)
		if progress != nil {
			progress(done, total)
		}
	}
	if sum.Flushed > 0 {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf(
			"%d non-zero values in %d tensors became 0 in float16 (|x| <= 2^-25; most in %q: %d; per tensor in the manifest's \"flushed\")",
			sum.Flushed, flushedIn, mostFlushed.Name, mostFlushed.Flushed))
	}
	shards, err := sw.finish()
	if err != nil {
		return nil, err
	}
	m.Shards = shards
	for _, s := range shards {
		sum.Bytes += s.Size
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "manifest.json"), layoutJSON(js, 2)); err != nil {
		return nil, err
	}
	return sum, nil
}

// layoutJSON re-indents compact JSON so that containers nested up to depth
// levels deep have one member per line and deeper ones stay on one line:
// with depth 2, every op and tensor of the manifest is one line.
func layoutJSON(js []byte, depth int) []byte {
	out := make([]byte, 0, len(js)+len(js)/8)
	level, inString, escaped := 0, false, false
	newline := func(l int) {
		out = append(out, '\n')
		for i := 0; i < l; i++ {
			out = append(out, ' ', ' ')
		}
	}
	for _, c := range js {
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			out = append(out, c)
		case '{', '[':
			out = append(out, c)
			level++
			if level <= depth {
				newline(level)
			}
		case '}', ']':
			if level <= depth {
				newline(level - 1)
			}
			level--
			out = append(out, c)
		case ',':
			out = append(out, c)
			if level <= depth {
				newline(level)
			}
		case ':':
			out = append(out, c)
			if level <= depth {
				out = append(out, ' ')
			}
		default:
			out = append(out, c)
		}
	}
	return append(out, '\n')
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func growF(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

// ShardName is the file name of shard i.
func ShardName(i int) string { return fmt.Sprintf("shard-%03d.bin", i) }

// shardWriter streams tensors into shard files, hashing as it writes.
type shardWriter struct {
	dir    string
	limit  int64
	shards []weights.Shard
	f      *os.File
	bw     *bufio.Writer
	h      hash.Hash
	off    int64
}

var zeros [weights.Alignment]byte

// place starts a tensor of length bytes: it pads the current shard to the
// alignment, or starts a new shard when the tensor would not fit, and
// returns where the tensor goes.
func (w *shardWriter) place(name string, length int64) (int, int64, error) {
	if length > w.limit {
		return 0, 0, &ShardSizeError{Size: w.limit, Tensor: name, Need: length}
	}
	aligned := (w.off + weights.Alignment - 1) / weights.Alignment * weights.Alignment
	if w.f == nil || aligned+length > w.limit {
		if err := w.next(); err != nil {
			return 0, 0, err
		}
		aligned = 0
	}
	if pad := aligned - w.off; pad > 0 {
		if err := w.write(zeros[:pad]); err != nil {
			return 0, 0, err
		}
	}
	return len(w.shards) - 1, aligned, nil
}

func (w *shardWriter) write(p []byte) error {
	if _, err := w.bw.Write(p); err != nil {
		return err
	}
	w.h.Write(p)
	w.off += int64(len(p))
	return nil
}

// next closes the current shard and opens the next one.
func (w *shardWriter) next() error {
	if err := w.closeCurrent(); err != nil {
		return err
	}
	name := ShardName(len(w.shards))
	f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	w.f, w.bw, w.h, w.off = f, bufio.NewWriterSize(f, 1<<20), sha256.New(), 0
	w.shards = append(w.shards, weights.Shard{File: name})
	return nil
}

func (w *shardWriter) closeCurrent() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	// No fsync: the rename makes the output appear complete to every other
	// process; after a power loss a reader's sha256 check catches a shard
	// the disk never got.
	err := w.bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	s := &w.shards[len(w.shards)-1]
	s.Size = w.off
	s.SHA256 = hex.EncodeToString(w.h.Sum(nil))
	return nil
}

func (w *shardWriter) finish() ([]weights.Shard, error) {
	if err := w.closeCurrent(); err != nil {
		return nil, err
	}
	return w.shards, nil
}

// abort closes an open shard after an error (the directory is removed by the caller).
func (w *shardWriter) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// atomicDir runs fill on a fresh temporary directory next to out and renames
// it to out when fill succeeds. On failure the temporary directory, and any
// parent directories created for it, are removed.
func atomicDir(out string, force bool, fill func(dir string) error) (err error) {
	out = filepath.Clean(out)
	replace, empty := false, false
	switch fi, serr := os.Stat(out); {
	case serr == nil && !fi.IsDir():
		return &OutputError{out, "exists and is not a directory"}
	case serr == nil:
		ents, rerr := os.ReadDir(out)
		if rerr != nil {
			return &OutputError{out, rerr.Error()}
		}
		if len(ents) > 0 {
			if !force {
				return &OutputError{out, "exists and is not empty: choose another -out or use -force to replace it"}
			}
			replace = true
		} else {
			empty = true
		}
	case !errors.Is(serr, fs.ErrNotExist):
		return &OutputError{out, serr.Error()}
	}
	parent := filepath.Dir(out)
	// Create missing parents, remembering the topmost one to remove on failure.
	created := ""
	for p := parent; ; p = filepath.Dir(p) {
		if _, serr := os.Stat(p); serr == nil {
			break
		} else if !errors.Is(serr, fs.ErrNotExist) {
			break // MkdirAll reports it
		}
		created = p
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return &OutputError{out, "cannot create its parent directory: " + err.Error()}
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		if created != "" {
			os.RemoveAll(created)
		}
		return &OutputError{out, "cannot create a temporary directory beside it: " + err.Error()}
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			if created != "" {
				os.RemoveAll(created)
			}
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if !replace {
		if empty { // os.Rename refuses an existing directory, even an empty one
			if err := os.Remove(out); err != nil {
				return &OutputError{out, "cannot replace the empty directory: " + err.Error()}
			}
		}
		if err := os.Rename(tmp, out); err != nil {
			return &OutputError{out, "cannot rename the finished output into place: " + err.Error()}
		}
		return nil
	}
	old := tmp + ".old"
	if err := os.Rename(out, old); err != nil {
		return &OutputError{out, "cannot move the old output aside: " + err.Error()}
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Rename(old, out) // put the old output back
		return &OutputError{out, "cannot rename the finished output into place: " + err.Error()}
	}
	if err := os.RemoveAll(old); err != nil {
		return &OutputError{out, "replaced, but the old output is left in " + old + ": " + err.Error()}
	}
	return nil
}
