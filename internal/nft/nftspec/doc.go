// Package nftspec describes the firewall egressfw installs, in its own
// terms: a Spec (table name, marks, route table, intercept ports) and its
// Tenants (cgroups, uids and uid ranges, forwarded interfaces and source
// ranges, container labels, DNS interception, allow_direct), the
// Containers that container identity binds, and the cgroup ids the maps
// key on. Validate and NormalContainers say what is wrong with one before
// anything is built from it. It carries no policy (the daemon converts
// its configuration into a Spec) and no nftables: package rules turns a
// Spec into the ruleset, and package nft installs that in the kernel.
package nftspec
