package rules

import (
	"fmt"
	"strings"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/google/nftables"
)

// Render prints the ruleset Apply(spec, ids) would install, in the syntax
// and layout `nft list table inet <Table>` uses, preceded by the policy
// routing it needs as comments, and followed, with Containers, by the
// bridge table as `nft list table bridge <Table>` shows it before any
// container is identified. Cgroup map keys are printed as numeric ids
// with the configured path as element comment (the nft CLI prints a key as a
// path instead when it finds that cgroup under /sys/fs/cgroup). The tproxy
// statements show their port map, which nft 1.0.6 omits when listing.
// After an Apply that updated an existing table, sets and chains it added
// are listed after the older ones (see the package doc, Atomicity).
func Render(spec nftspec.Spec, ids nftspec.CgroupIDs) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("render ruleset: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# ip rule add fwmark %#x/%#x lookup %d pref %d\n", spec.InterceptMark, spec.MarkMask, spec.RouteTable, spec.RulePriority)
	fmt.Fprintf(&b, "# ip -6 rule add fwmark %#x/%#x lookup %d pref %d\n", spec.InterceptMark, spec.MarkMask, spec.RouteTable, spec.RulePriority)
	fmt.Fprintf(&b, "# ip route add local 0.0.0.0/0 dev lo table %d\n", spec.RouteTable)
	fmt.Fprintf(&b, "# ip -6 route add local ::/0 dev lo table %d\n", spec.RouteTable)
	b.WriteString(Build(&spec, ids).render(spec.Table))
	if spec.Containers { // with no container identified yet
		b.WriteString(BuildBridge(&spec, nil).render(spec.Table))
	}
	return b.String(), nil
}

// render prints the table like nft does (tabs, blank lines between blocks).
func (rs *Ruleset) render(table string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", FamilyName(rs.TableFamily()), table)
	var blocks []string
	for _, s := range rs.Sets {
		blocks = append(blocks, s.render())
	}
	for _, c := range rs.Chains {
		blocks = append(blocks, c.Render())
	}
	b.WriteString(strings.Join(blocks, "\n"))
	b.WriteString("}\n")
	return b.String()
}

func (s *SetDef) render() string {
	var b strings.Builder
	kind, typ := "set", s.Set.KeyType.Name
	if s.Set.IsMap {
		kind, typ = "map", typ+" : "+s.Set.DataType.Name
	}
	fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", kind, s.Set.Name, typ)
	if s.Set.Interval {
		b.WriteString("\t\tflags interval\n")
	}
	if len(s.texts) > 0 {
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(s.texts, ", "))
	}
	b.WriteString("\t}\n")
	return b.String()
}

// Render prints the chain like nft does; the Manager compares these texts
// to know which chains an Apply can keep (package nft, keep.go).
func (c *ChainDef) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain %s {\n", c.Chain.Name)
	if c.header != "" {
		fmt.Fprintf(&b, "\t\t%s\n", c.header)
	}
	for _, r := range c.Rules {
		fmt.Fprintf(&b, "\t\t%s\n", r.text())
	}
	b.WriteString("\t}\n")
	return b.String()
}

// TableFamily is the family of the table rs describes.
func (rs *Ruleset) TableFamily() nftables.TableFamily {
	if rs.Family == nftables.TableFamilyUnspecified {
		return nftables.TableFamilyINet
	}
	return rs.Family
}

// FamilyName is a family as nft writes it.
func FamilyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "inet"
}
