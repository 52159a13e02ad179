package config

import (
	"fmt"
	"maps"
	"math/bits"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Docker configures Docker-label tenants: egressfw follows the containers
// of a Docker Engine (or Podman's Docker-compatible socket) through its
// API, and a container whose labels match a tenant's docker_labels is that
// tenant's, bound to its bridge port so that no other container can send
// as it. The socket gives root over the host: see the README.
type Docker struct {
	// Socket is the Engine API's unix socket; "" (the default) turns
	// Docker-label tenants off.
	Socket string `toml:"socket"`
	// Reconcile is how often the running containers are listed again, to
	// catch events the stream did not deliver.
	Reconcile Duration `toml:"reconcile"`
}

// Labelled reports whether the tenant is a Docker-label tenant.
func (t *Tenant) Labelled() bool { return len(t.DockerLabels) > 0 }

// MatchesLabels reports whether a container with labels has every label
// of the tenant's docker_labels.
func (t *Tenant) MatchesLabels(labels map[string]string) bool {
	if !t.Labelled() {
		return false
	}
	for k, v := range t.DockerLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// validateDocker checks [docker], the container marks it needs and every
// tenant's docker_labels.
func (c *Config) validateDocker(v *validator) {
	d := c.Docker
	if d.Socket != "" {
		if !filepath.IsAbs(d.Socket) || filepath.Clean(d.Socket) != d.Socket {
			v.add("docker.socket", "%q must be a clean absolute path, like \"/run/docker.sock\"", d.Socket)
		}
		c.validateContainerMarks(v)
	}
	if d.Reconcile.Duration < time.Second || d.Reconcile.Duration > 24*time.Hour {
		v.add("docker.reconcile", "%s is out of range [1s, 24h]", d.Reconcile.Duration)
	}
	var labelled []int
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if t.DockerLabels == nil {
			continue
		}
		key := tenantKey(i, t) + ".docker_labels"
		switch {
		case len(t.DockerLabels) == 0:
			v.add(key, "empty: it would match every container; name at least one label")
			continue
		case d.Socket == "":
			v.add(key, "needs docker.socket, the Engine API the labels are read from")
		}
		for _, k := range slices.Sorted(maps.Keys(t.DockerLabels)) {
			if k == "" || strings.ContainsFunc(k+t.DockerLabels[k], func(r rune) bool { return r < ' ' || r == 0x7f }) {
				v.add(key, "label %q = %q: want a non-empty key, no control characters", k, t.DockerLabels[k])
			}
		}
		for _, j := range labelled {
			if o := &c.Tenants[j]; maps.Equal(o.DockerLabels, t.DockerLabels) {
				v.add(key, "the same labels as tenant %q: a container with them would match both and get neither", o.Name)
			}
		}
		labelled = append(labelled, i)
		c.checkLabelledSlot(v, key, i)
	}
}

// tenantKey names tenant i as the other checks do.
func tenantKey(i int, t *Tenant) string {
	if tenantName.MatchString(t.Name) {
		return fmt.Sprintf("tenant %q", t.Name)
	}
	return fmt.Sprintf("tenant[%d]", i)
}

// validateContainerMarks checks the container marks: contiguous, of one
// width, clear of the other marks egressfw uses.
func (c *Config) validateContainerMarks(v *validator) {
	f := c.Firewall
	cm, ct := f.ContainerMarkMask, f.ContainerCtMask
	switch {
	case !contiguousMask(cm):
		v.add("firewall.container_mark_mask", "%#x must be one nonzero run of bits, like 0xff", cm)
	case cm&f.MarkMask != 0:
		v.add("firewall.container_mark_mask", "%#x overlaps mark_mask %#x", cm, f.MarkMask)
	}
	switch {
	case !contiguousMask(ct):
		v.add("firewall.container_ct_mask", "%#x must be one nonzero run of bits, like 0xff0000", ct)
	case ct&f.CtMarkMask != 0:
		v.add("firewall.container_ct_mask", "%#x overlaps ctmark_mask %#x", ct, f.CtMarkMask)
	case contiguousMask(cm) && bits.OnesCount32(cm) != bits.OnesCount32(ct):
		v.add("firewall.container_ct_mask", "%#x must be as wide as container_mark_mask %#x", ct, cm)
	}
}

// checkLabelledSlot checks that the slot tenant i gets on a fresh start
// (its place in the config: validateSlots makes that slot i+1) fits the
// container mark. Reloads keep slots: the daemon checks those.
func (c *Config) checkLabelledSlot(v *validator, key string, i int) {
	cm := c.Firewall.ContainerMarkMask
	if !contiguousMask(cm) {
		return
	}
	if max := MaxSlots(cm); uint64(i+1) > max {
		v.add(key, "a labelled tenant's slot (here %d, its place in the config) must fit firewall.container_mark_mask %#x (at most %d): move the tenant up, or widen the mask", i+1, cm, max)
	}
}

// contiguousMask reports whether m is one nonzero run of bits.
func contiguousMask(m uint32) bool {
	if m == 0 {
		return false
	}
	low := m >> bits.TrailingZeros32(m)
	return low&(low+1) == 0
}

// Warnings returns what is valid but probably not meant: a tenant whose
// docker_labels are a subset of another's (a container with the larger
// set matches both, and gets neither).
func (c *Config) Warnings() []string {
	var out []string
	for i := range c.Tenants {
		a := &c.Tenants[i]
		for j := range c.Tenants {
			b := &c.Tenants[j]
			if i == j || len(a.DockerLabels) >= len(b.DockerLabels) || !a.MatchesLabels(b.DockerLabels) {
				continue
			}
			out = append(out, fmt.Sprintf("tenant %q: docker_labels are a subset of tenant %q's: a container with all of %q's labels matches both and gets neither tenant",
				a.Name, b.Name, b.Name))
		}
	}
	return out
}
