package tcptest

import (
	"io"
	"testing"
)

// TestPair: the two ends are connected to each other, both ways.
func TestPair(t *testing.T) {
	d, a := Pair(t)
	if d.LocalAddr().String() != a.RemoteAddr().String() {
		t.Fatalf("dialed end %v, accepted end's peer %v", d.LocalAddr(), a.RemoteAddr())
	}
	for _, c := range [][2]io.ReadWriter{{d, a}, {a, d}} {
		if _, err := c[0].Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c[1], b); err != nil || b[0] != 'x' {
			t.Fatalf("read %q, %v", b, err)
		}
	}
}
