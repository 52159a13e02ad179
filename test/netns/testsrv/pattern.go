package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
)

// Seeds of the two transfer directions, so a byte sent the wrong way or
// reordered is caught.
const (
	seedUp   = "egressfw-e2e-up"
	seedDown = "egressfw-e2e-down"
)

// patternReader returns n deterministic pseudo-random bytes for seed.
func patternReader(seed string, n int64) io.Reader {
	var key [32]byte
	copy(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// verify reads r to EOF and compares it with the pattern of seed; it
// returns how many bytes were read and whether they were exactly the n
// expected ones.
func verify(r io.Reader, seed string, n int64) (int64, bool, error) {
	want := patternReader(seed, n)
	var got int64
	buf := make([]byte, 256<<10)
	wbuf := make([]byte, 256<<10)
	ok := true
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if ok {
				m, _ := io.ReadFull(want, wbuf[:k])
				if m != k || !bytes.Equal(buf[:k], wbuf[:k]) {
					ok = false
				}
			}
			got += int64(k)
		}
		if err == io.EOF {
			return got, ok && got == n, nil
		}
		if err != nil {
			return got, false, fmt.Errorf("read after %d bytes: %w", got, err)
		}
	}
}
