// Package daemon runs egressfw's lifecycle: it loads the config, assigns
// each tenant a slot that stays its own across reloads (slots.go), reads
// the tenants' sub-uids (subuid.go), installs and guards the kernel
// ruleset and follows the tenants' cgroups (firewall.go: internal/nft,
// internal/cgroup), follows the host's own addresses (hostaddrs.go), and
// serves the metrics endpoint, the watchdog's health and the socket
// `egressfw status` reads (status.go, internal/status). The data path
// itself, every tenant connection, is internal/proxy's.
//
// A config is applied in one order, at start and on every reload (apply):
// the proxy builds its snapshot and opens the new tenants' listeners, the
// rules that send traffic to them go in once all are open, then the
// snapshot is installed and the listeners of removed tenants close. Any
// failure before the rules are in leaves the running config as it was.
//
// Guard installs, at boot, the rules a stopped egressfw leaves; Rules,
// Cleanup and CheckHost are the back ends of the CLI commands of those
// names.
//
// The graph is one-way: cmd/egressfw -> internal/daemon -> internal/proxy
// -> leaf packages that know nothing of each other (internal/dnsname, the
// name normaliser, is the one they share).
package daemon
