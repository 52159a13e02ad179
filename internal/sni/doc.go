// Package sni tells which host a tenant connection wants from the first
// bytes it sends, without consuming them: the data path replays exactly the
// bytes it peeked to the upstream it dials.
//
// Sniff tells a TLS handshake from an HTTP/1.x request. This package
// understands a TLS ClientHello (server_name, ALPN, versions, whether an
// Encrypted Client Hello extension is present); an HTTP/1.x request head
// (Host, absolute-form and CONNECT targets, the HTTP/2 prior-knowledge
// preface) is read by internal/httphead, and the Result carries its host
// and method. Host strings from both go through internal/dnsname, so IP
// literals become addresses and names are normalised the same way
// everywhere. Parsers never panic, never read past what they are given and
// bound their work by explicit limits; Peek reads a connection's first
// bytes under a deadline, parsing each read where the last one stopped.
package sni
