package docker

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// Event lines as Docker 20.10 and Podman 4 send them.
var eventSeeds = []string{
	`{"status":"start","id":"9f3b9a4a04f1aa04794b047431f671c6f00d4e7816780c2d640c8d71d006c115","from":"egfw-busybox","Type":"container","Action":"start","Actor":{"ID":"9f3b9a4a04f1aa04794b047431f671c6f00d4e7816780c2d640c8d71d006c115","Attributes":{"egressfw.tenant":"trusted","image":"egfw-busybox","name":"c1"}},"scope":"local","time":1764543000,"timeNano":1764543000123456789}`,
	`{"Type":"network","Action":"connect","Actor":{"ID":"4c8859bc4198","Attributes":{"container":"9f3b9a4a04f1","name":"bridge","type":"bridge"}},"scope":"local","time":1764543000}`,
	`{"Type":"container","Action":"rename","Actor":{"ID":"9f3b9a4a04f1","Attributes":{"name":"c1b","oldName":"/c1"}}}`,
	`{"Type":"container","Action":"died","Actor":{"ID":"9f3b9a4a04f1","Attributes":{"containerExitCode":"0","name":"c1","podId":""}}}`,
	`{"Type":"container","Action":"exec_start: sh -c true","Actor":{"ID":"9f3b9a4a04f1"}}`,
	``,
	`{"Type":"container","Action":"start","Actor":{"ID":1}}`,
}

func TestEventStream(t *testing.T) {
	in := strings.Join(eventSeeds[:4], "\n") + "\n\n" + strings.Repeat("x", maxEventBytes+1) + "\n"
	s := &eventStream{body: io.NopCloser(nil), r: bufio.NewReader(strings.NewReader(in))}
	want := []struct{ typ, action, id, attr string }{
		{"container", "start", "9f3b9a4a04f1aa04794b047431f671c6f00d4e7816780c2d640c8d71d006c115", "trusted"},
		{"network", "connect", "4c8859bc4198", ""},
		{"container", "rename", "9f3b9a4a04f1", ""},
		{"container", "died", "9f3b9a4a04f1", ""},
	}
	for _, w := range want {
		e, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != w.typ || e.Action != w.action || e.Actor.ID != w.id || e.Actor.Attributes["egressfw.tenant"] != w.attr {
			t.Errorf("event %+v, want %+v", e, w)
		}
	}
	if _, err := s.next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("an oversized event: %v, want an error", err)
	}
}

// FuzzEventStream: any bytes on the event stream give events or an error,
// never a panic, and no line is kept beyond the bound.
func FuzzEventStream(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &eventStream{body: io.NopCloser(nil), r: bufio.NewReaderSize(bytes.NewReader(data), 16)}
		for range 1000 {
			if _, err := s.next(); err != nil {
				return
			}
		}
	})
}
