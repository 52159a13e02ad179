package h1relay

import "sync"

// bufSize is the pooled size of a relay buffer: a typical head and the
// start of its body. A buffer grows beyond it (allocated) only for a head
// that needs it, up to its max.
const bufSize = 16 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// buffer holds a direction's bytes read and not yet forwarded, b[r:w]. It
// takes its memory from a pool when bytes arrive and gives it back when
// it is empty (tproxy.ReadBuffer), so an idle connection holds none.
type buffer struct {
	b      []byte
	pooled *[]byte // b's pool entry, if b is one
	r, w   int
	max    int // the most b may grow to
}

func (b *buffer) bytes() []byte { return b.b[b.r:b.w] }

// consume drops n forwarded bytes.
func (b *buffer) consume(n int) {
	if b.r += n; b.r == b.w {
		b.r, b.w = 0, 0
	}
}

// full reports whether there is no room for another byte.
func (b *buffer) full() bool { return b.w-b.r >= b.max }

// Space returns the room after the bytes held, compacting or growing b
// (up to max) when there is none; the caller checks full first.
func (b *buffer) Space() []byte {
	if b.b == nil {
		b.pooled = bufs.Get().(*[]byte)
		b.b, b.r, b.w = *b.pooled, 0, 0
	}
	if b.w == len(b.b) && b.r > 0 {
		b.w, b.r = copy(b.b, b.b[b.r:b.w]), 0
	}
	if b.w == len(b.b) && len(b.b) < b.max {
		grown := make([]byte, min(2*len(b.b), b.max))
		copy(grown, b.b[:b.w])
		if b.pooled != nil {
			bufs.Put(b.pooled)
		}
		b.b, b.pooled = grown, nil
	}
	return b.b[b.w:min(len(b.b), b.r+b.max)]
}

// Unused gives an empty buffer back while the connection waits.
func (b *buffer) Unused() {
	if b.r == b.w {
		b.release()
	}
}

// release drops b's memory, back to the pool if it came from there.
func (b *buffer) release() {
	if b.pooled != nil {
		bufs.Put(b.pooled)
	}
	b.b, b.pooled, b.r, b.w = nil, nil, 0, 0
}
