package dnsfront

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/dnsname"
	"github.com/miekg/dns"
)

// Query is one question a tenant asked, as the kernel and the message
// told it. Only Name and Type come from the tenant's bytes.
type Query struct {
	// Slot is the tenant: the slot of the listener the query arrived on.
	Slot uint32
	// Name is the question's name normalised by dnsname.Normalize
	// (lower case, no trailing dot).
	Name string
	// Type is the question's type (dns.TypeA, ...); its class is IN.
	Type uint16
	// TCP says the query came over TCP.
	TCP bool
	// Src is the tenant's address and port; Local is the address and port
	// it arrived at (after the kernel's redirect: the listener's).
	Src, Local netip.AddrPort

	once    sync.Once
	origDst func() netip.AddrPort
	orig    netip.AddrPort
}

// OrigDst returns where the tenant sent the query before the kernel
// redirected it (any resolver address, port 53), from conntrack; the zero
// AddrPort if it cannot be found. It is looked up on the first call only,
// so a caller that never logs the query does not pay for it.
func (q *Query) OrigDst() netip.AddrPort {
	q.once.Do(func() {
		if q.origDst != nil {
			q.orig = q.origDst()
		}
	})
	return q.orig
}

// Verdict is what a Decision answers.
type Verdict uint8

// Verdicts.
const (
	// Answer sends Records (none: NODATA) with NOERROR.
	Answer Verdict = iota
	// NXDomain answers that the name does not exist: egressfw's refusal of
	// a name (see the package doc).
	NXDomain
	// Refused answers REFUSED (a query type the tenant may not ask).
	Refused
	// ServFail answers SERVFAIL (the upstream failed or timed out).
	ServFail
)

var verdictNames = [...]string{Answer: "answer", NXDomain: "nxdomain", Refused: "refused", ServFail: "servfail"}

// String names the verdict, for logs.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict?"
}

// Decision is the caller's answer to a Query.
type Decision struct {
	Verdict Verdict
	// Records are the answer section for Answer: the CNAME chain from the
	// name, then the records of the type, owners as FQDNs (as
	// resolver.Answer and resolver.Result.Records build them). dnsfront
	// takes them over: it edits them (owner case, Strip) while replying.
	Records []dns.RR
	// Strip says what to remove from HTTPS and SVCB records.
	Strip Strip
	// Tell, when not empty, is told to the tenant as the text of an
	// Extended DNS Error (RFC 8914; Blocked for NXDomain and Refused),
	// if the query had EDNS. Empty keeps every refusal alike.
	Tell string
	// Reason is a low-cardinality label for metrics and logs
	// ("allowed", "denied_domain", "internal_address", ...).
	Reason string
	// Log asks for the query to be logged (a refusal, or what report mode
	// would have refused); Detail is the full reason for that line.
	Log    bool
	Detail string
}

// Decider decides tenants' queries; the proxy implements it. Decide may
// block (it resolves names); ctx ends when the query's time is up. It is
// called concurrently.
type Decider interface {
	Decide(ctx context.Context, q *Query) Decision
}

// Event reports one message after its reply was sent (or not).
type Event struct {
	// Query is the question; nil when the message was not a query
	// dnsfront could read (Reason says why).
	Query *Query
	// Decision is the Decider's, zero when dnsfront answered alone.
	Decision Decision
	// Reason is dnsfront's own when it answered without the Decider (or
	// did not answer): "format_error", "not_implemented", "bad_version",
	// "invalid_name", "not_class_in", "meta_type", "not_a_query",
	// "overloaded", "no_decider"; "" otherwise.
	Reason string
	// Rcode is the response code sent (-1: nothing was sent).
	Rcode int
	// Answers is the number of records in the answer section sent.
	Answers int
	// Truncated says the answer did not fit the UDP reply: TC was set.
	Truncated bool
	// Stripped is what Strip removed.
	Stripped Stripped
	// Duration is from reading the query to writing the reply.
	Duration time.Duration
}

// handler answers messages; one per Server.
type handler struct {
	decide  Decider
	observe func(*Event)
	timeout time.Duration
}

// handle answers one message from a tenant, appends the reply to out and
// reports it; it returns out unchanged when no reply is due. meta fills in
// the Query's kernel-given fields.
func (h *handler) handle(ctx context.Context, msg []byte, out []byte, meta *Query) []byte {
	var ev Event
	out = h.answer(ctx, msg, out, meta, &ev)
	h.report(&ev)
	return out
}

// report hands ev to the observer. The listeners call it once the reply is
// sent, so what the observer does (a log line, and the conntrack lookup of
// the original destination for it) never delays the reply.
func (h *handler) report(ev *Event) {
	if h.observe != nil {
		h.observe(ev)
	}
}

// answer is handle without the report: ev is filled in for it.
func (h *handler) answer(ctx context.Context, msg []byte, out []byte, meta *Query, ev *Event) []byte {
	start := time.Now()
	*ev = Event{Rcode: -1}
	defer func() { ev.Duration = time.Since(start) }()
	q, ok := parseQuery(msg)
	if !ok {
		ev.Reason = "not_a_query"
		return out
	}
	if q.rcode != rcodeSuccess {
		ev.Reason, ev.Rcode = rcodeReason(q.rcode), q.rcode
		return rawReply(out, &q, q.rcode, false, "", 0)
	}
	ev.Query = meta
	meta.Type = q.qtype
	asked, valid := presentation(q.name)
	if valid {
		meta.Name, valid = normalize(asked)
	}
	switch {
	case q.qclass != classIN:
		ev.Reason, ev.Rcode = "not_class_in", rcodeRefused
	case !dnsname.DataType(q.qtype):
		ev.Reason, ev.Rcode = "meta_type", rcodeNotImp
	case !valid:
		ev.Reason, ev.Rcode = "invalid_name", rcodeNXDomain
	case h.decide == nil:
		ev.Reason, ev.Rcode = "no_decider", rcodeRefused
	}
	if ev.Rcode >= 0 {
		return rawReply(out, &q, ev.Rcode, false, "", 0)
	}
	dctx, cancel := context.WithTimeout(ctx, h.timeout)
	d := h.decide.Decide(dctx, meta)
	cancel()
	ev.Decision = d
	return h.reply(out, &q, asked, &d, ev)
}

// reply writes the Decider's decision.
func (h *handler) reply(out []byte, q *query, asked string, d *Decision, ev *Event) []byte {
	switch d.Verdict {
	case Answer:
		rrs, st := d.Strip.Apply(d.Records)
		ev.Stripped = st
		reply, tc, err := answerReply(out, q, asked, rrs, replyLimit(q, ev.Query.TCP))
		ev.Rcode, ev.Truncated = rcodeSuccess, tc
		if err != nil {
			ev.Rcode, ev.Reason = rcodeServFail, "pack_error"
		} else if !tc {
			ev.Answers = len(rrs)
		}
		return reply
	case NXDomain:
		ev.Rcode = rcodeNXDomain
		return rawReply(out, q, ev.Rcode, false, d.Tell, edeBlocked)
	case Refused:
		ev.Rcode = rcodeRefused
		return rawReply(out, q, ev.Rcode, false, d.Tell, edeBlocked)
	}
	ev.Rcode = rcodeServFail
	return rawReply(out, q, rcodeServFail, false, d.Tell, edeOther)
}

func rcodeReason(rcode int) string {
	switch rcode {
	case rcodeNotImp:
		return "not_implemented"
	case rcodeBadVers:
		return "bad_version"
	}
	return "format_error"
}

// normalize checks a question's name the way every name egressfw judges
// is checked.
func normalize(asked string) (string, bool) {
	name, err := dnsname.Normalize(asked)
	return name, err == nil
}
