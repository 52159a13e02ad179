// Package config reads and validates /etc/egressfw/egressfw.toml.
//
// The whole configuration is one struct tree. Default returns it with every
// default spelled out; Parse decodes TOML over those defaults, refuses unknown
// keys and wrong types, and runs Validate, which reports every problem at once,
// each naming the key (and the tenant) and what is wrong with it. A config that
// fails to load is never partly applied: the caller keeps the one it has.
//
// A tenant's Slot (its conntrack-mark value) and the listener port it leads
// to are computed and checked in one place, Listener.SlotOf.
package config
