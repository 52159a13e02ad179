package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// client speaks the few requests of the Docker Engine API that the
// follower needs, JSON over the engine's unix socket. Paths carry no
// version: the engine answers them in its own current version (Docker 29
// refuses versions below 1.44, so a pinned old path would break), and
// every field read here has been in the API since 1.24 and is served by
// Podman's compatible socket too. Only per-network fields are read
// (NetworkSettings.Networks), never the deprecated top-level ones.
type client struct {
	http *http.Client
}

// Response size bounds: the engine is trusted (its socket is root), but a
// bug there must not exhaust egressfw's memory.
const (
	maxListBytes    = 64 << 20
	maxInspectBytes = 4 << 20
	maxEventBytes   = 1 << 20
)

func newClient(socket string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
	}
	return &client{http: &http.Client{Transport: tr}}
}

// errNotFound is the engine's 404: no such container.
var errNotFound = errors.New("no such container")

// get decodes the JSON answer to GET path into v.
func (c *client) get(ctx context.Context, path string, limit int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET %s: %w", path, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// listed is an entry of GET /containers/json (running containers).
type listed struct {
	ID string `json:"Id"`
}

// inspected is the part of GET /containers/{id}/json the follower reads.
type inspected struct {
	ID     string `json:"Id"`
	Name   string
	Config struct {
		Labels map[string]string
	}
	State struct {
		Running bool
		Pid     int
	}
	NetworkSettings struct {
		SandboxKey string
		Networks   map[string]struct {
			NetworkID         string
			EndpointID        string // Podman: always empty
			IPAddress         string
			GlobalIPv6Address string
			MacAddress        string
		}
	}
}

func (c *client) list(ctx context.Context) ([]listed, error) {
	var out []listed
	return out, c.get(ctx, "/containers/json", maxListBytes, &out)
}

func (c *client) inspect(ctx context.Context, id string) (*inspected, error) {
	var out inspected
	if err := c.get(ctx, "/containers/"+url.PathEscape(id)+"/json", maxInspectBytes, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// engine names the engine, e.g. "Docker Engine 20.10.24 (API 1.41)" or
// "Podman Engine 4.3.1 (API 1.41)".
func (c *client) engine(ctx context.Context) (string, error) {
	var v struct {
		Version    string
		APIVersion string `json:"ApiVersion"`
		Components []struct{ Name string }
	}
	if err := c.get(ctx, "/version", maxInspectBytes, &v); err != nil {
		return "", err
	}
	name := "Docker Engine"
	for _, comp := range v.Components {
		if strings.HasPrefix(comp.Name, "Podman") {
			name = comp.Name
		}
	}
	return fmt.Sprintf("%s %s (API %s)", name, v.Version, v.APIVersion), nil
}

// event is one entry of the event stream.
type event struct {
	Type   string
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
}

// events opens the event stream of containers and networks. The caller
// reads it with next and closes it.
func (c *client) events(ctx context.Context) (*eventStream, error) {
	f, _ := json.Marshal(map[string][]string{"type": {"container", "network"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?filters="+url.QueryEscape(string(f)), nil)
	if err != nil {
		return nil, fmt.Errorf("GET /events: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /events: %s", resp.Status)
	}
	return &eventStream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 64<<10)}, nil
}

// eventStream reads events, one JSON object per line.
type eventStream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// next returns the next event; an error ends the stream.
func (s *eventStream) next() (event, error) {
	for {
		line, err := readLine(s.r, maxEventBytes)
		if err != nil {
			return event{}, err
		}
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		return parseEvent(line)
	}
}

func (s *eventStream) Close() error { return s.body.Close() }

// readLine reads one line of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, more, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("event longer than %d bytes", limit)
		}
		if !more {
			return line, nil
		}
	}
}

// parseEvent decodes one event line.
func parseEvent(line []byte) (event, error) {
	var e event
	if err := json.Unmarshal(line, &e); err != nil {
		return event{}, fmt.Errorf("decode event: %w", err)
	}
	return e, nil
}

// parseAddr reads an address the API gives ("" for none).
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}
