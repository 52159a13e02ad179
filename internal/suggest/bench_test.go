package suggest

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkSuggest reads 10,000 current-format connection lines of one
// tenant (1,000 names under 100 domains) and renders the fragment.
func BenchmarkSuggest(b *testing.B) {
	var in bytes.Buffer
	for i := 0; i < 10000; i++ {
		line := bytes.Replace([]byte(currentLine), []byte(`"name":"svc.example.com","decision":"would_deny"`),
			fmt.Appendf(nil, `"name":"n%d.d%d.example","decision":"allow"`, i%1000, i%100), 1)
		in.Write(line)
		in.WriteByte('\n')
	}
	b.SetBytes(int64(in.Len()))
	b.ResetTimer()
	for b.Loop() {
		l := NewLog()
		if st, err := Read(bytes.NewReader(in.Bytes()), Filter{}, l); err != nil || st.Used != 10000 {
			b.Fatalf("%+v %v", st, err)
		}
		if err := NewPlan("a", l.Tenants["a"], nil, Options{Collapse: 2}).WriteFragment(io.Discard, ""); err != nil {
			b.Fatal(err)
		}
	}
}
