package httphead

import "bytes"

// Parser reads one request head as it arrives. It is fed the growing
// buffer of the bytes read so far and remembers where its search for the
// end of the current line stopped, so each byte is examined a bounded
// number of times however the bytes are split into reads; each line is
// checked once, when its CRLF is in. A Parser reads one head; read the
// next request on a connection with a new one.
type Parser struct {
	limit     int
	res       Head
	preface   int // leading bytes that match the HTTP/2 preface; -1 once they do not
	line      int // start of the current line
	scan      int // where the search for its LF continues
	inHeaders bool
	target    span // the request-target, once the request line is in
	host      span // the Host value, if hasHost
	hasHost   bool
	work      int // bytes examined (Examined)
	// deferTarget: Done once the head is in, without reading its target
	// and Host (see Requests, which resolves them only when it must).
	deferTarget bool
}

// span is where a field lies in the buffer: the parser keeps offsets, not
// slices, because the caller may move the buffer when it grows.
type span struct{ start, end int }

// spanOf returns where s, resliced from b (sharing its end of capacity), lies in b.
func spanOf(b, s []byte) span {
	start := cap(b) - cap(s)
	return span{start, start + len(s)}
}

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// NewParser returns a Parser for a head that must end within limit bytes
// (DefaultMaxHead when <= 0).
func NewParser(limit int) *Parser {
	if limit <= 0 {
		limit = DefaultMaxHead
	}
	return &Parser{limit: limit}
}

// Parse continues with b, which holds the head from its first byte and
// extends every buffer passed before (the caller may have moved it). It
// returns what Parse of the package returns for b; after Done or
// Malformed it must not be called again.
func (p *Parser) Parse(b []byte) (Head, Status, error) {
	// A dripped head is fed one byte at a time: NeedMore returns at once,
	// without copying the partial head.
	if st, err := p.parse(b); st != NeedMore {
		return p.res, st, err
	}
	return Head{}, NeedMore, nil
}

func (p *Parser) parse(b []byte) (Status, error) {
	head := b[:min(len(b), p.limit)]
	if p.preface >= 0 {
		switch p.matchPreface(head) {
		case Done:
			p.res.Method, p.res.Version, p.res.H2Preface, p.res.Len = "PRI", "HTTP/2.0", true, len(Preface)
			return Done, nil
		case NeedMore:
			return tooLargeOr(NeedMore, nil, len(b), p.limit)
		}
	}
	for {
		line, st, err := p.nextLine(head)
		if st != Done {
			return tooLargeOr(st, err, len(b), p.limit)
		}
		p.work += len(line)
		if err := p.takeLine(head, line); err != nil {
			return Malformed, err
		}
		if len(line) == 0 && p.inHeaders {
			if !p.deferTarget {
				if err := p.resolveTarget(b); err != nil {
					return Malformed, err
				}
			}
			p.res.Len = p.line
			return Done, nil
		}
	}
}

// Examined is how many bytes the parse so far looked at, counting a byte
// once each time it was looked at; the tests bound it by a constant per
// byte read, however the head was split into reads.
func (p *Parser) Examined() int { return p.work }

// matchPreface compares the bytes not compared yet with the HTTP/2
// preface: Done once all of it matched, NeedMore while the head may still
// be it, Malformed (meaning only "not the preface") otherwise.
func (p *Parser) matchPreface(head []byte) Status {
	n := min(len(head), len(Preface))
	for ; p.preface < n; p.preface++ {
		p.work++
		if head[p.preface] != Preface[p.preface] {
			p.preface = -1
			return Malformed
		}
	}
	if n == len(Preface) {
		return Done
	}
	return NeedMore
}

// takeLine checks a complete line: the request line first, then header
// fields; the empty line after the request line ends the head.
func (p *Parser) takeLine(head, line []byte) error {
	if !p.inHeaders {
		target, err := parseRequestLine(&p.res, line)
		if err != nil {
			return err
		}
		p.target, p.inHeaders = spanOf(head, target), true
		return nil
	}
	if len(line) == 0 {
		return nil
	}
	name, value, err := headerField(line)
	if err != nil {
		return err
	}
	if asciiEqualFold(name, "host") {
		if p.hasHost {
			return malformed("duplicate Host header")
		}
		p.host, p.hasHost = spanOf(head, value), true
	}
	return nil
}

// nextLine returns the next CRLF-terminated line, without the CRLF, once
// its LF is in; it searches only bytes it has not searched before. An LF
// without CR, or a CR anywhere but before an LF, is malformed (a CR that is
// the last byte so far is judged when the next byte comes).
func (p *Parser) nextLine(head []byte) ([]byte, Status, error) {
	i := bytes.IndexByte(head[p.scan:], '\n')
	end := len(head)
	if i >= 0 {
		end = p.scan + i
	}
	from := max(p.line, p.scan-1) // the last byte of the previous search may be a CR
	p.work += end - p.scan + end - from
	if j := bytes.IndexByte(head[from:end], '\r'); j >= 0 && from+j != end-1 {
		return nil, Malformed, malformed("bare CR in request head")
	}
	if i < 0 {
		p.scan = len(head)
		return nil, NeedMore, nil
	}
	if end == p.line || head[end-1] != '\r' {
		return nil, Malformed, malformed("bare LF in request head")
	}
	line := head[p.line : end-1]
	p.line, p.scan = end+1, end+1
	return line, Done, nil
}
