// Package httphead reads HTTP/1.x request heads (the request line and the
// header fields up to the empty line) from untrusted bytes and tells which
// host they target: the Host header, an absolute-form or CONNECT target
// that must agree with it, or the HTTP/2 prior-knowledge preface, which
// names none.
//
// It is stricter than RFC 9112 lets a recipient be, because a firewall and
// the server behind it must never disagree about where a request goes:
// anything two parsers could read differently is Malformed, not guessed
// (see Parse). Host strings go through internal/dnsname, so IP literals in
// any spelling become addresses and names are normalised as everywhere
// else in egressfw.
//
// A Parser reads a head as it arrives: fed the growing buffer of the bytes
// read so far, it continues where it stopped, so a head dripped one byte
// per read costs work linear in its length; a head that does not end
// within its limit is refused (ErrTooLarge). Head.Len says where the head
// ends, which is where a body or the next request on the connection
// starts. internal/sni peeks at a connection's first bytes and hands an
// HTTP request to this package; the bytes are never consumed here.
package httphead
