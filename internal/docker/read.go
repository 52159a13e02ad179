package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
)

// read returns container id as the engine describes it now, with its
// bridge ports, or nil if it is not running. The port is found from the
// container's network namespace, named by the sandbox path or, without
// access to it, by the container's first process; the container is read
// again afterwards, and if it changed meanwhile (a restart: another
// process, another namespace) the whole read is repeated.
func (f *Follower) read(ctx context.Context, id string) (*Container, error) {
	for range 3 {
		in, err := f.inspect(ctx, id)
		if err != nil || in == nil {
			return nil, err
		}
		c := &Container{ID: in.ID, Name: strings.TrimPrefix(in.Name, "/"), Labels: in.Config.Labels}
		for name, n := range in.NetworkSettings.Networks {
			ep := Endpoint{Network: name, NetworkID: n.NetworkID}
			ep.MAC, _ = net.ParseMAC(n.MacAddress)
			if a := parseAddr(n.IPAddress); a.Is4() {
				ep.IPv4 = a
			}
			if a := parseAddr(n.GlobalIPv6Address); a.Is6() {
				ep.IPv6 = a
			}
			c.Endpoints = append(c.Endpoints, ep)
		}
		slices.SortFunc(c.Endpoints, func(a, b Endpoint) int { return strings.Compare(a.Network, b.Network) })
		if err := f.cfg.Ports.Find(in.NetworkSettings.SandboxKey, in.State.Pid, c.Endpoints); err != nil {
			f.cfg.Log.Warn("docker: bridge ports of a container not found", "id", c.ShortID(), "name", c.Name, "error", err)
		}
		again, err := f.inspect(ctx, id)
		if err != nil || again == nil {
			return nil, err
		}
		if again.State.Pid == in.State.Pid && again.NetworkSettings.SandboxKey == in.NetworkSettings.SandboxKey {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %.12s keeps changing while it is read", id)
}

// inspect returns the container's description, or nil if it is not
// running (or no longer exists).
func (f *Follower) inspect(ctx context.Context, id string) (*inspected, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	in, err := f.c.inspect(ctx, id)
	switch {
	case errors.Is(err, errNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !in.State.Running:
		return nil, nil
	}
	return in, nil
}

// sameContainer reports whether a and b (nil: not running) are alike.
func sameContainer(a, b *Container) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.Name == b.Name && maps.Equal(a.Labels, b.Labels) &&
		slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y Endpoint) bool {
			return x.Network == y.Network && x.NetworkID == y.NetworkID && slices.Equal(x.MAC, y.MAC) &&
				x.IPv4 == y.IPv4 && x.IPv6 == y.IPv6 && x.Port == y.Port && x.Bridge == y.Bridge
		})
}
