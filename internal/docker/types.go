// Package docker follows the containers of a Docker Engine (or Podman's
// Docker-compatible socket) through its API, and finds each container's
// bridge port from the host side, so the caller can bind the container's
// identity to the port it sends from.
//
// The API is JSON over a unix socket; a client of ~150 lines (client.go)
// replaces the official module, which would add 1.2 MB to the binary and
// 40-50 modules to the build graph (see the package's benchmark notes in
// the report of issue 21). A Follower lists the running containers, then
// follows the event stream (start, die, destroy, network connect and
// disconnect, rename), re-reading a container on each of its events; it
// opens the stream before listing, so nothing that happens in between is
// missed, rebuilds from a fresh list whenever the stream breaks or the
// engine restarts (reconnecting with backoff), and reconciles with a fresh
// list periodically. What the API says about a container's network is
// trusted; nothing is read from inside a container (follow.go, ports.go).
//
// Nothing here imports another egressfw package: the caller turns
// snapshots into rules.
package docker

import (
	"maps"
	"net"
	"net/netip"
	"slices"
)

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	Network   string           // the network's name
	NetworkID string           // as the API gives it (Podman gives the name)
	MAC       net.HardwareAddr // the address the engine gave the endpoint
	IPv4      netip.Addr       // zero if none
	IPv6      netip.Addr       // global address; zero if none
	// Port is the ifindex of the host side of the endpoint's veth (the
	// bridge port its frames arrive on), Bridge the ifindex of the bridge;
	// both 0 when no such port was found (another network driver, a
	// rootless runtime, or the container gone meanwhile).
	Port, Bridge int
}

// Container is a running container.
type Container struct {
	ID        string
	Name      string // without the API's leading "/"
	Labels    map[string]string
	Endpoints []Endpoint // sorted by network name
}

// ShortID is the first 12 characters of the ID, as docker ps shows it.
func (c *Container) ShortID() string {
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

func (c *Container) clone() Container {
	out := *c
	out.Labels = maps.Clone(c.Labels)
	out.Endpoints = slices.Clone(c.Endpoints)
	return out
}

// Snapshot is what the follower knows at one moment.
type Snapshot struct {
	Containers map[string]Container // running containers by ID
	// Live is true while the event stream is open and the containers are
	// the engine's current ones. False: the engine cannot be read; the
	// containers are the last known ones, without the endpoints whose
	// bridge port has since been deleted.
	Live bool
	// Pending counts the containers being read when the snapshot was
	// taken (listed or named by an event, their description not in yet):
	// 0 once a listing has been read through.
	Pending int
	// Engine names the engine, e.g. "Docker Engine 20.10.24 (API 1.41)".
	Engine string
}
