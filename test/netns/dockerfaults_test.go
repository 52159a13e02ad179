package netns

import (
	"strings"
	"testing"
	"time"
)

// client is container name as a client, in its current network namespace
// (a restarted container has a new one).
func (w *labelWorld) client(name string) who {
	w.tp.t.Helper()
	return who{label: name, netns: "/proc/" + w.inspect(name, "{{.State.Pid}}") + "/ns/net"}
}

// apiUp is egressfw_docker_api_up as egressfw's metrics show it.
func (w *labelWorld) apiUp(t *testing.T) string {
	t.Helper()
	r := w.tp.curl(nonTenant(), "http://127.0.0.1:9464/metrics")
	for _, l := range strings.Split(r.body, "\n") {
		if v, ok := strings.CutPrefix(l, "egressfw_docker_api_up "); ok {
			return v
		}
	}
	t.Fatalf("no egressfw_docker_api_up in the metrics:\n%.2000s", r.body)
	return ""
}

// TestDockerLabelsRestarts: identities stay right across a restart of
// egressfw (the first request after it is up already gets the labelled
// tenant: the bindings and the rules are applied in one transaction) and
// of dockerd (the containers come back with new bridge ports, which
// egressfw binds again; the old ones are deleted).
func TestDockerLabelsRestarts(t *testing.T) {
	t.Parallel()
	w := newLabelWorld(t, func(w *labelWorld) {
		w.run("relay", trustedLabel, "--restart", "always")
		w.run("plain", "", "--restart", "always")
	})
	tp, d := w.tp, w.d
	check(t, "relay: svc", tp.curl(w.client("relay"), svcByName...), okSvc)
	check(t, "plain: svc", tp.curl(w.client("plain"), svcByName...), deniedInt)

	t.Run("egressfw restarted", func(t *testing.T) {
		d.stop()
		i := d.since()
		d.start()
		check(t, "relay: svc, first request", tp.curl(w.client("relay"), svcByName...), okSvc)
		w.svcLogged(t, i, w.client("relay"), "trusted", "relay")
		check(t, "plain: svc", tp.curl(w.client("plain"), svcByName...), deniedInt)
	})

	t.Run("dockerd restarted", func(t *testing.T) {
		oldPid := w.inspect("relay", "{{.State.Pid}}")
		i := d.since()
		w.dk.Stop()
		if _, ok := d.waitLogFrom(i, func(l logLine) bool { return strings.HasPrefix(l.str("msg"), "docker: engine API lost") }, 10*time.Second); !ok {
			t.Error("egressfw did not log the engine lost")
		}
		w.dk.Up()
		deadline := time.Now().Add(30 * time.Second)
		for w.inspect("relay", "{{.State.Running}} {{.State.Pid}}") == "true "+oldPid || !strings.HasPrefix(w.inspect("plain", "{{.State.Running}}"), "true") {
			if time.Now().After(deadline) {
				t.Fatal("the containers did not come back with dockerd")
			}
			time.Sleep(100 * time.Millisecond)
		}
		relay, plain := w.client("relay"), w.client("plain")
		took := w.untilSvc(t, relay, true, 10*time.Second)
		t.Logf("relay back in its tenant %v after dockerd was up", took.Round(time.Millisecond))
		i = d.since()
		check(t, "relay: svc", tp.curl(relay, svcByName...), okSvc)
		w.svcLogged(t, i, relay, "trusted", "relay")
		check(t, "plain: svc", tp.curl(plain, svcByName...), deniedInt)
		check(t, "plain: public", tp.curl(plain, publicHTTP...), okPublic)
	})
}

// TestDockerLabelsAPIDown: while the Engine API cannot be read (the relay
// egressfw reads it through is cut; dockerd runs on), containers egressfw
// identified keep their tenant, a labelled container started meanwhile
// gets only the interface tenant, and the metric and STATUS= say so. Once
// the API answers again, the new container gets its tenant.
func TestDockerLabelsAPIDown(t *testing.T) {
	t.Parallel()
	var sd *notifySocket
	w := newLabelWorld(t, func(w *labelWorld) {
		w.run("relay", trustedLabel)
		sd = listenNotify(t, w.tp.dir)
		w.env = []string{"NOTIFY_SOCKET=" + sd.path}
	})
	tp, d := w.tp, w.d
	isReady := func(m string) bool { return strings.HasPrefix(m, "READY=1") }
	if m := sd.waitFor(t, "READY=1", isReady, 5*time.Second); strings.Contains(m[len(m)-1], "Docker") {
		t.Errorf("status while the API answers: %q", m[len(m)-1])
	}
	relay := w.client("relay")
	check(t, "relay: svc", tp.curl(relay, svcByName...), okSvc)
	if v := w.apiUp(t); v != "1" {
		t.Errorf("egressfw_docker_api_up = %s while the API answers, want 1", v)
	}

	i := d.since()
	w.relay.cut()
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return strings.HasPrefix(l.str("msg"), "docker: engine API lost") }, 10*time.Second); !ok {
		t.Fatal("egressfw did not log the engine lost")
	}
	if v := w.apiUp(t); v != "0" {
		t.Errorf("egressfw_docker_api_up = %s while the API cannot be read, want 0", v)
	}
	sd.waitFor(t, "a STATUS saying the API is unreachable", func(m string) bool {
		return strings.HasPrefix(m, "STATUS=serving 3 tenant(s)") && strings.Contains(m, "Docker API unreachable: new containers get their interface tenant only")
	}, 5*time.Second)
	newcomer := w.run("newcomer", trustedLabel)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		check(t, "newcomer, API down: svc", tp.curl(newcomer, svcByName...), deniedInt)
	}
	check(t, "newcomer, API down: public", tp.curl(newcomer, publicHTTP...), okPublic)
	check(t, "relay, API down: svc", tp.curl(relay, svcByName...), okSvc)

	w.relay.open()
	took := w.untilSvc(t, newcomer, true, 10*time.Second)
	t.Logf("newcomer got its tenant %v after the API answered again", took.Round(time.Millisecond))
	if v := w.apiUp(t); v != "1" {
		t.Errorf("egressfw_docker_api_up = %s once the API answers again, want 1", v)
	}
	sd.waitFor(t, "the normal STATUS again", func(m string) bool {
		return strings.HasPrefix(m, "STATUS=serving 3 tenant(s)") && !strings.Contains(m, "Docker")
	}, 5*time.Second)
}
