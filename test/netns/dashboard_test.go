package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// dashboardPath is the Grafana dashboard the package ships.
const dashboardPath = "../../packaging/grafana/egressfw.json"

// TestDashboardMetrics: every metric the Grafana dashboard queries is
// exported by a running egressfw, once it has seen what the dashboard
// shows: allowed and denied connections over HTTP and TLS from a local
// tenant and a VM, another program's nft -f, and a reload. A histogram's
// _bucket, _sum and _count are its family's. Series egressfw exports that
// the dashboard does not show are listed in the log.
func TestDashboardMetrics(t *testing.T) {
	t.Parallel()
	queried := dashboardMetrics(t)
	w := newRestoreWorld(t)
	tp, d := w.tp, w.d
	check(t, "a: public", tp.curl(w.a, args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/")...), okPublic)
	check(t, "a: bi-tool", tp.curl(w.a, args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/")...), deniedInt)
	check(t, "vm: public", tp.curl(w.vm, "http://"+ipPublic+"/"), okPublic)
	check(t, "vm: bi-tool", tp.curl(w.vm, "http://"+ipBITool+"/"), deniedInt)
	restoreThenReload(t, tp, d)

	page := tp.curl(nonTenant(), "http://127.0.0.1:9464/metrics")
	if page.status != 200 {
		t.Fatalf("metrics endpoint: %v", page)
	}
	families := exposedFamilies(page.body)
	for _, m := range queried {
		if !exported(families, m) {
			t.Errorf("the dashboard queries %s, which egressfw does not export", m)
		}
	}
	var unshown []string
	for name := range families {
		if strings.HasPrefix(name, "egressfw_") && !slices.ContainsFunc(queried, func(q string) bool { return q == name || familyOf(q) == name }) {
			unshown = append(unshown, name)
		}
	}
	slices.Sort(unshown)
	t.Logf("the dashboard queries %d metrics; egressfw series it does not show: %v", len(queried), unshown)
	if t.Failed() {
		t.Logf("metrics:\n%s", page.body)
	}
}

// exposedFamilies maps each metric family on a /metrics page to its type
// (the "# TYPE name type" lines).
func exposedFamilies(page string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(page, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// exported: name is a family on the page, or a histogram's (or summary's)
// _bucket, _sum or _count series.
func exported(families map[string]string, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	typ := families[familyOf(name)]
	return typ == "histogram" || (typ == "summary" && !strings.HasSuffix(name, "_bucket"))
}

// familyOf is name without a histogram series' suffix.
func familyOf(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok {
			return base
		}
	}
	return name
}

// dashboard is the shipped dashboard, decoded.
func dashboard(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// panelsOf lists the dashboard's panels, those inside collapsed rows too.
func panelsOf(d map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(ps []any)
	walk = func(ps []any) {
		for _, p := range ps {
			pm, _ := p.(map[string]any)
			out = append(out, pm)
			if sub, ok := pm["panels"].([]any); ok {
				walk(sub)
			}
		}
	}
	ps, _ := d["panels"].([]any)
	walk(ps)
	return out
}

// labelValues is a Grafana variable query label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_]\w*\)$`)

// dashboardMetrics lists, sorted and once each, the metrics of every PromQL
// expression of the dashboard: the panels' targets and the variables'
// label_values queries.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	d := dashboard(t)
	var exprs []string
	for _, p := range panelsOf(d) {
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			if e, _ := tg.(map[string]any)["expr"].(string); e != "" {
				exprs = append(exprs, e)
			}
		}
	}
	vars, _ := d["templating"].(map[string]any)["list"].([]any)
	for _, v := range vars {
		vm := v.(map[string]any)
		if vm["type"] != "query" {
			continue
		}
		q, _ := vm["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("variable %v: query %q is not label_values(selector, label)", vm["name"], q)
		}
		exprs = append(exprs, m[1])
	}
	var out []string
	for _, e := range exprs {
		ms, err := promqlMetrics(e)
		if err != nil || len(ms) == 0 {
			t.Fatalf("expression %q: metrics %v, %v", e, ms, err)
		}
		out = append(out, ms...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// promqlKeywords are PromQL's words that are no metric: binary operators,
// modifiers and aggregation operators (which "by (...)" may follow before
// their "("). Followed by "(", by, without, on, ignoring, group_left and
// group_right take a label list.
var promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}

// promqlMetrics lists the metric names of a PromQL expression: the
// identifiers that are no function (not followed by "("), keyword, label
// list, label matcher ({...}), range ([...]), string, number or Grafana
// variable ($name, ${name}).
func promqlMetrics(expr string) ([]string, error) {
	var out []string
	rs := []rune(expr)
	skipTo := func(i int, open, close rune) (int, error) {
		depth := 0
		for j := i; j < len(rs); j++ {
			switch rs[j] {
			case '"', '\'', '`':
				k := skipString(rs, j)
				if k < 0 {
					return 0, fmt.Errorf("unterminated string at %d", j)
				}
				j = k
			case open:
				depth++
			case close:
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c at %d", open, i)
	}
	isIdent := func(r rune, first bool) bool {
		return r == '_' || r == ':' || unicode.IsLetter(r) || (!first && unicode.IsDigit(r))
	}
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			k := skipString(rs, i)
			if k < 0 {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i = k + 1
		case r == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case r == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case r == '$':
			i++
			if i < len(rs) && rs[i] == '{' {
				j, err := skipTo(i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = j
			}
			for i < len(rs) && isIdent(rs[i], false) {
				i++
			}
		case unicode.IsDigit(r) || (r == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1])):
			for i < len(rs) && (isIdent(rs[i], false) || rs[i] == '.') {
				i++
			}
		case isIdent(r, true):
			j := i
			for j < len(rs) && isIdent(rs[j], false) {
				j++
			}
			word := string(rs[i:j])
			k := j
			for k < len(rs) && unicode.IsSpace(rs[k]) {
				k++
			}
			paren := k < len(rs) && rs[k] == '('
			switch {
			case paren && (word == "by" || word == "without" || word == "on" || word == "ignoring" ||
				word == "group_left" || word == "group_right"):
				e, err := skipTo(k, '(', ')')
				if err != nil {
					return nil, err
				}
				j = e
			case paren, promqlKeywords[strings.ToLower(word)]:
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

// skipString returns the index of the quote that closes the string
// starting at i, or -1.
func skipString(rs []rune, i int) int {
	q := rs[i]
	for j := i + 1; j < len(rs); j++ {
		switch {
		case rs[j] == '\\' && q != '`':
			j++
		case rs[j] == q:
			return j
		}
	}
	return -1
}

// TestPromQLMetrics: the metric names the dashboard test reads out of
// PromQL expressions.
func TestPromQLMetrics(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"a selector", `egressfw_tenants`, "egressfw_tenants"},
		{"matchers and a range", `rate(egressfw_connections_total{tenant=~"$tenant", reason!="a{b}[c]"}[$__rate_interval])`, "egressfw_connections_total"},
		{"aggregation with by", `sum by (tenant, decision) (rate(egressfw_bytes_total[5m]))`, "egressfw_bytes_total"},
		{"by after the aggregation", `sum(rate(x_total[1m])) by (le)`, "x_total"},
		{"a histogram quantile", `histogram_quantile(0.99, sum by (le, result) (rate(egressfw_dns_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`, "egressfw_dns_duration_seconds_bucket"},
		{"a ratio", `sum(rate(a_total{result="hit"}[5m])) / sum(rate(a_total[5m]))`, "a_total a_total"},
		{"vector matching", `time() - max by (instance) (process_start_time_seconds and on (instance) egressfw_build_info)`, "process_start_time_seconds egressfw_build_info"},
		{"group_left and bool", `a > bool on (x) group_left (y) b offset 5m`, "a b"},
		{"numbers and durations", `increase(a[24h]) * 1e3 + 0.5`, "a"},
		{"a grafana variable", `a{instance=~"${instance:regex}"} / $scale`, "a"},
		{"a name with a colon", `job:requests:rate5m`, "job:requests:rate5m"},
		{"a quoted brace in a matcher", `a{x="}"}`, "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := promqlMetrics(c.expr)
			if err != nil || strings.Join(got, " ") != c.want {
				t.Errorf("promqlMetrics(%s) = %v, %v; want %s", c.expr, got, err, c.want)
			}
		})
	}
	for _, bad := range []string{`a{x="y"`, `rate(a[5m)`, `a{x="y}`} {
		if got, err := promqlMetrics(bad); err == nil {
			t.Errorf("promqlMetrics(%s) = %v, want an error", bad, got)
		}
	}
}

// TestDashboardShape: the dashboard loads as Grafana expects what it is
// given: unique panel ids, a 24-column grid without overlaps, every query
// on the dashboard's Prometheus data source variable, and at least the
// panels the issue asks for.
func TestDashboardShape(t *testing.T) {
	d := dashboard(t)
	if d["uid"] != "egressfw" || d["title"] != "egressfw" {
		t.Errorf("uid %v, title %v", d["uid"], d["title"])
	}
	type rect struct{ x, y, w, h float64 }
	var placed []rect
	ids := map[float64]bool{}
	var titles []string
	for _, p := range panelsOf(d) {
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v twice", id)
		}
		ids[id] = true
		title, _ := p["title"].(string)
		titles = append(titles, title)
		g, _ := p["gridPos"].(map[string]any)
		r := rect{g["x"].(float64), g["y"].(float64), g["w"].(float64), g["h"].(float64)}
		if r.w <= 0 || r.h <= 0 || r.x+r.w > 24 {
			t.Errorf("panel %q: gridPos %v", title, g)
		}
		for _, o := range placed {
			if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
				t.Errorf("panel %q overlaps another at %v", title, g)
			}
		}
		placed = append(placed, r)
		targets, _ := p["targets"].([]any)
		if p["type"] != "row" && len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, tg := range targets {
			ds, _ := tg.(map[string]any)["datasource"].(map[string]any)
			if ds["uid"] != "${datasource}" {
				t.Errorf("panel %q: a query on data source %v, not ${datasource}", title, ds)
			}
		}
	}
	all := strings.Join(titles, "\n")
	for _, w := range []string{"New connections per tenant", "Denials per tenant", "Decisions by reason", "Peek", "DNS",
		"Connect upstream", "Resolver cache hit ratio", "Ruleset restores"} {
		if !strings.Contains(all, w) {
			t.Errorf("no panel titled %q", w)
		}
	}
}
