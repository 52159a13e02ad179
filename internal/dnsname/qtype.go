package dnsname

// typeOPT is the EDNS pseudo-record type (RFC 6891), never a question.
const typeOPT = 41

// DataType reports whether qtype is a data type a tenant may ask and
// egressfw's resolver serves: not 0, not OPT and not a meta or
// question-only type (128-255: TSIG, AXFR, ANY, ...). The config accepts
// in dns_query_types only what the resolver will answer.
func DataType(qtype uint16) bool {
	return qtype != 0 && qtype != typeOPT && (qtype < 128 || qtype > 255)
}
