package policy

import "testing"

// TestClassifyCloudEndpoints: platform endpoints a VM reaches without a
// credential are internal by default wherever they live, the ones in public
// space included; public_cidrs still overrides them like any default.
func TestClassifyCloudEndpoints(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		runClassCases(t, mustClassifier(t, nil, nil), []classCase{
			{"168.63.129.16", true, "168.63.129.16 is Azure WireServer, a cloud platform endpoint (Microsoft Azure)"},
			{"::ffff:168.63.129.16", true, "embeds 168.63.129.16, Azure WireServer"},
			{"64:ff9b::a83f:8110", true, "embeds 168.63.129.16, Azure WireServer"},
			{"2002:a83f:8110::1", true, "embeds 168.63.129.16, Azure WireServer"},
			{"168.63.129.15", false, "is public"},
			{"168.63.129.17", false, "is public"},
			// Already covered by the special-purpose blocks.
			{"169.254.169.254", true, "link-local (RFC 3927)"},            // AWS, GCP, Azure IMDS, OCI, DO, Hetzner, OpenStack
			{"169.254.170.2", true, "link-local (RFC 3927)"},              // AWS ECS task metadata
			{"169.254.0.23", true, "link-local (RFC 3927)"},               // Tencent Cloud
			{"169.254.42.42", true, "link-local (RFC 3927)"},              // Scaleway
			{"fe80::a9fe:a9fe", true, "link-local (RFC 4291)"},            // OpenStack over IPv6
			{"fd00:ec2::254", true, "unique-local (RFC 4193)"},            // AWS IMDS over IPv6
			{"fd00:a9fe:a9fe::1", true, "unique-local (RFC 4193)"},        // Akamai/Linode
			{"fd00:42::42", true, "unique-local (RFC 4193)"},              // Scaleway over IPv6
			{"fd20:ce::254", true, "unique-local (RFC 4193)"},             // GCP over IPv6
			{"100.100.100.200", true, "shared address space (RFC 6598)"},  // Alibaba Cloud
			{"192.0.0.192", true, "IETF protocol assignments (RFC 6890)"}, // Oracle Cloud@Customer
		})
	})
	t.Run("public_cidrs overrides", func(t *testing.T) {
		runClassCases(t, mustClassifier(t, nil, []string{"168.63.129.16/32"}), []classCase{
			{"168.63.129.16", false, "168.63.129.16 is in public_cidrs 168.63.129.16/32"},
		})
	})
}
