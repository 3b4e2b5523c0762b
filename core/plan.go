package core

import (
	"github.com/residual-go/residual/core/weights"
)

// A plan maps every blob version of a validated op list onto activation
// buffers. Blob versions ("values") are grouped into storages: a flatten
// output shares its input's storage (same data, new shape), and a standalone
// ReLU whose input storage is read by nobody after it runs in place. Each
// storage is live from the op that first writes it to the last op that reads
// any of its values (the network output stays live to the end). Storages are
// then packed into buffers greedily in op order: before op i runs, each
// storage it starts takes the smallest free buffer that is large enough (or
// grows the largest free one, or opens a new one); after op i, the storages
// whose last reader was op i give their buffers back. An op's output is
// assigned before its inputs are released, so no op writes a buffer it
// reads from, except the in-place ReLU, which is elementwise.
type plan struct {
	ops     []weights.Op
	values  []planValue
	opIns   [][]int // value ids each op reads
	opOut   []int   // value id each op writes
	input   int     // value id of the network input
	output  int     // value id of the network output
	storage []planStorage
	bufs    []int // buffer sizes in float32s
}

type planValue struct {
	shape   [3]int
	size    int // C*H*W
	storage int
	def     int // op index that writes it; -1 for the network input
	last    int // last op index that reads it; len(ops) for the network output
}

type planStorage struct {
	size       int // largest value kept in it
	start, end int // first writer, last reader (op indices; -1 = before op 0)
	buf        int // buffer index
}

// newPlan plans m's ops. With reuse false every storage gets its own buffer
// (the reference the tests compare the packed plan against).
func newPlan(m *weights.Manifest, reuse bool) *plan {
	p := &plan{ops: m.Ops}
	latest := map[string]int{}
	newValue := func(shape [3]int, def int) int {
		p.values = append(p.values, planValue{shape: shape, size: shape[0] * shape[1] * shape[2], def: def, last: def, storage: -1})
		return len(p.values) - 1
	}
	p.input = newValue([3]int{m.Input.Channels, m.Input.Height, m.Input.Width}, -1)
	latest[m.Input.Name] = p.input
	p.opIns = make([][]int, len(m.Ops))
	p.opOut = make([]int, len(m.Ops))
	for i, op := range m.Ops {
		ins := make([]int, len(op.Inputs))
		for j, name := range op.Inputs {
			v := latest[name] // Validate guarantees it exists
			ins[j] = v
			p.values[v].last = i
		}
		p.opIns[i] = ins
		p.opOut[i] = newValue(op.OutShape, i)
		latest[op.Output] = p.opOut[i]
	}
	p.output = latest[m.Output]
	p.values[p.output].last = len(m.Ops)

	// Storages, in order of first write.
	newStorage := func(v int) {
		val := &p.values[v]
		p.storage = append(p.storage, planStorage{size: val.size, start: val.def, end: val.last, buf: -1})
		val.storage = len(p.storage) - 1
	}
	join := func(v, s int) {
		val := &p.values[v]
		st := &p.storage[s]
		val.storage = s
		st.size = max(st.size, val.size)
		st.end = max(st.end, val.last)
	}
	newStorage(p.input)
	for i, op := range m.Ops {
		out := p.opOut[i]
		switch {
		case op.Type == weights.OpFlatten:
			join(out, p.values[p.opIns[i][0]].storage)
		case op.Type == weights.OpReLU && reuse && p.storage[p.values[p.opIns[i][0]].storage].end == i:
			// Every value of the input's storage written so far has its last
			// reader here; values written later that join it derive from out.
			join(out, p.values[p.opIns[i][0]].storage)
		default:
			newStorage(out)
		}
	}

	// Buffers. starts[i+1] lists storages first written by op i (index 0: the input).
	starts := make([][]int, len(m.Ops)+1)
	ends := make([][]int, len(m.Ops)+1)
	for s, st := range p.storage {
		starts[st.start+1] = append(starts[st.start+1], s)
		if st.end < len(m.Ops) {
			ends[st.end+1] = append(ends[st.end+1], s)
		}
	}
	var free []int
	for step := range starts {
		for _, s := range starts[step] {
			st := &p.storage[s]
			if !reuse {
				st.buf = len(p.bufs)
				p.bufs = append(p.bufs, st.size)
				continue
			}
			st.buf, free = p.pick(free, st.size)
		}
		if reuse {
			for _, s := range ends[step] {
				free = append(free, p.storage[s].buf)
			}
		}
	}
	return p
}

// pick returns a buffer for a storage of size values: the smallest free
// buffer that fits, else the largest free buffer grown to size, else a new
// one. It returns the free list without the chosen buffer.
func (p *plan) pick(free []int, size int) (int, []int) {
	best, largest := -1, -1
	for j, b := range free {
		if p.bufs[b] >= size && (best < 0 || p.bufs[b] < p.bufs[free[best]]) {
			best = j
		}
		if largest < 0 || p.bufs[b] > p.bufs[free[largest]] {
			largest = j
		}
	}
	if best < 0 {
		best = largest
	}
	if best < 0 {
		p.bufs = append(p.bufs, size)
		return len(p.bufs) - 1, free
	}
	b := free[best]
	p.bufs[b] = max(p.bufs[b], size)
	return b, append(free[:best], free[best+1:]...)
}

// activationFloats is the size of all buffers together, in float32s.
func (p *plan) activationFloats() int {
	n := 0
	for _, b := range p.bufs {
		n += b
	}
	return n
}

// valueFloats is what a plan without reuse would need: every value stored apart.
func (p *plan) valueFloats() int {
	n := 0
	for _, v := range p.values {
		n += v.size
	}
	return n
}
