package rules

import (
	"encoding/binary"
	"fmt"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// uidElems returns the elements of the uids interval map: per interval, a
// start element with the tenant's verdict and an end element at Last+1
// (sorted before a start element with the same key: adjacent ranges of two
// tenants). Keys are big-endian, as the rule converts skuid before the
// lookup (an interval set compares keys as byte strings).
func uidElems(tenants []nftspec.Tenant) []Element {
	var out []Element
	for _, t := range tenants {
		for _, r := range t.UIDIntervals() {
			out = append(out,
				Element{uint64(r.First)<<1 | 1, nftables.SetElement{Key: be32(r.First), VerdictData: jump(t.Slot)},
					fmt.Sprintf("%s : jump %s", r, TenantChainName(t.Slot))},
				Element{uint64(r.Last+1) << 1, nftables.SetElement{Key: be32(r.Last + 1), IntervalEnd: true}, ""})
		}
	}
	return out
}

// uidMap is the uids interval map, typed like nft's "type uid : verdict;
// flags interval".
func uidMap(table *nftables.Table, elems []Element) *SetDef {
	return newSet(&nftables.Set{Table: table, Name: mapUIDs, IsMap: true, Interval: true,
		KeyType: nftables.TypeUID, DataType: nftables.TypeVerdict}, elems)
}

// uidLookup is `meta skuid vmap @uids`: the owner uid, converted to the
// map's big-endian keys, looked up.
func uidLookup() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeySKUID, Register: reg1},
		&expr.Byteorder{SourceRegister: reg1, DestRegister: reg1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		vmap(mapUIDs, 0),
	}
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
