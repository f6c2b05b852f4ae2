package matrix

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/testfix"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

func TestNamesLookup(t *testing.T) {
	a := netip.MustParseAddr("52.1.2.3")
	n := NewNames()
	n.Add(a, "cdn.quay.io", t0, t0.Add(time.Minute))
	n.Add(a, "quay.io", t0.Add(30*time.Second), t0.Add(2*time.Minute))
	n.Add(netip.MustParseAddr("::ffff:52.1.2.4"), "open.example.com", time.Time{}, time.Time{})
	n.Add(a, "quay.io", t0.Add(30*time.Second), t0.Add(2*time.Minute)) // repeated: kept once
	cases := []struct {
		addr string
		at   time.Time
		want string
	}{
		{"52.1.2.3", t0.Add(-time.Second), ""},
		{"52.1.2.3", t0, "cdn.quay.io"},
		{"52.1.2.3", t0.Add(45 * time.Second), "cdn.quay.io"}, // both valid: lowest name, every time
		{"52.1.2.3", t0.Add(90 * time.Second), "quay.io"},
		{"52.1.2.3", t0.Add(2 * time.Minute), "quay.io"}, // inclusive
		{"52.1.2.3", t0.Add(3 * time.Minute), ""},
		{"52.1.2.4", t0, "open.example.com"}, // mapped address stored as IPv4
		{"::ffff:52.1.2.4", t0.Add(1000 * time.Hour), "open.example.com"},
		{"52.1.2.5", t0, ""},
	}
	for _, c := range cases {
		host, ok := n.Lookup(netip.MustParseAddr(c.addr), c.at)
		if host != c.want || ok != (c.want != "") {
			t.Errorf("Lookup(%s, %s) = %q %v, want %q", c.addr, c.at.Format(time.TimeOnly), host, ok, c.want)
		}
	}
	if got := n.LookupAll(a, t0.Add(45*time.Second)); strings.Join(got, ",") != "cdn.quay.io,quay.io" {
		t.Errorf("LookupAll = %v", got)
	}
	if n.Len() != 3 {
		t.Errorf("Len %d, want 3", n.Len())
	}
	if h, ok := n.LookupRange(a, t0.Add(-time.Hour), t0.Add(10*time.Second)); !ok || h != "cdn.quay.io" {
		t.Errorf("LookupRange over the start of a resolution = %q %v", h, ok)
	}
	var nilNames *Names
	if _, ok := nilNames.Lookup(a, t0); ok {
		t.Error("nil Names found a name")
	}
}

func TestNamesFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"resolutions":[
  {"address":"52.1.2.3","host":"Quay.io.","from":"2026-01-02T10:00:00Z","to":"2026-01-02T11:00:00Z"},
  {"address":"2600::1","host":"registry.redhat.io"}
]}`)
	n, err := LoadNamesFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := n.Lookup(netip.MustParseAddr("52.1.2.3"), t0.Add(10*time.Minute)); !ok || h != "quay.io" {
		t.Fatalf("Lookup = %q %v", h, ok)
	}
	if _, ok := n.Lookup(netip.MustParseAddr("52.1.2.3"), t0.Add(2*time.Hour)); ok {
		t.Fatal("resolution used outside its range")
	}
	saved := filepath.Join(dir, "saved.json")
	if err := SaveNamesFile(saved, n); err != nil {
		t.Fatal(err)
	}
	again, err := LoadNamesFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(n.Resolutions(), again.Resolutions()) {
		t.Fatalf("round trip:\n%+v\n%+v", n.Resolutions(), again.Resolutions())
	}

	bad := []struct{ name, body, want string }{
		{"unknown.json", `{"resolutions":[],"extra":1}`, `unknown field "extra"`},
		{"entryfield.json", "{\"resolutions\":[\n{\"address\":\"1.2.3.4\",\"host\":\"a.b\",\"ttl\":5}]}", "line 2"},
		{"addr.json", `{"resolutions":[{"address":"1.2.3.4","host":"a.b"},{"address":"nope","host":"a.b"}]}`, `resolutions[1]: address "nope"`},
		{"host.json", `{"resolutions":[{"address":"1.2.3.4","host":"*.quay.io"}]}`, `resolutions[0] (address 1.2.3.4): host "*.quay.io"`},
		{"nohost.json", `{"resolutions":[{"address":"1.2.3.4"}]}`, `host "": empty`},
		{"time.json", `{"resolutions":[{"address":"1.2.3.4","host":"a.b","from":"yesterday"}]}`, "from: parsing time"},
		{"order.json", `{"resolutions":[{"address":"1.2.3.4","host":"a.b","from":"2026-01-02T11:00:00Z","to":"2026-01-02T10:00:00Z"}]}`, "is before from"},
		{"syntax.json", "{\"resolutions\":[\n\n{]}", "line 3"},
		{"trailing.json", `{"resolutions":[]} {}`, "unexpected data after"},
		{"empty.json", ``, "empty file"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadNamesFile(write(c.name, c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, c.name, c.want)
			}
		})
	}
	if _, err := LoadNamesFile(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestMatrixJSON(t *testing.T) {
	opts := testOptions()
	opts.Names = NewNames()
	opts.Names.Add(netip.MustParseAddr("52.0.0.1"), "a.example.com", time.Time{}, time.Time{})
	m := Build(syntheticRecords(500), opts)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, m); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(bytes.NewReader(buf.Bytes()), "m.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, back) {
		t.Fatalf("round trip differs:\n%+v\n%+v", m.Stats, back.Stats)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"srcNamespace"`)) || !bytes.Contains(buf.Bytes(), []byte(`"portEvidence": "syn"`)) {
		t.Fatalf("JSON does not use the contract names:\n%.400s", buf.String())
	}

	var empty bytes.Buffer
	if err := WriteJSON(&empty, Build(nil, opts)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(empty.Bytes(), []byte(`"entries": []`)) {
		t.Fatalf("an empty matrix must write entries as [], got %s", empty.String())
	}

	bad := []struct{ name, body, want string }{
		{"unknown field", "{\"entries\":[],\n\"stats\":{\"records\":1,\"bogus\":2}}", `line 2: json: unknown field "bogus"`},
		{"wrong type", `{"entries":[{"port":"443"}],"stats":{}}`, "cannot unmarshal string"},
		{"duplicate entry", `{"entries":[{"srcNamespace":"a","dstName":"x","protocol":"TCP","port":1},{"srcNamespace":"a","dstName":"x","protocol":"TCP","port":1,"flows":3}],"stats":{}}`, "entries[0] and entries[1]"},
		{"trailing", `{"entries":[],"stats":{}}]`, "unexpected data after"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(c.body), "m.json")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "m.json") {
				t.Fatalf("error %v, want one naming m.json and containing %q", err, c.want)
			}
		})
	}
}

func samplesDir(t testing.TB) string { return testfix.Samples(t) }

// TestSamples folds every real sample through the decoder and the builder.
func TestSamples(t *testing.T) {
	aws := []netip.Prefix{ // the AWS sample cluster: machine, pod and service networks
		netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("10.128.0.0/14"), netip.MustParsePrefix("172.30.0.0/16"),
	}
	fold := func(t *testing.T, name string, opts Options) *Matrix {
		t.Helper()
		b := NewBuilder(opts)
		st, err := flow.DecodeFile(filepath.Join(samplesDir(t), name), func(r flow.Record) error { b.Add(r); return nil })
		if err != nil {
			t.Fatal(err)
		}
		b.AddDecodeStats(st)
		m := b.Matrix()
		checkStats(t, m)
		if m.Stats.Records != st.Records {
			t.Fatalf("builder saw %d records, decoder %d", m.Stats.Records, st.Records)
		}
		return m
	}
	files, err := filepath.Glob(filepath.Join(samplesDir(t), "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		t.Run("all/"+filepath.Base(f), func(t *testing.T) {
			b := NewBuilder(Options{ClusterNetworks: aws})
			st, err := flow.DecodeFile(f, func(r flow.Record) error { b.Add(r); return nil })
			if err != nil {
				if strings.Contains(err.Error(), "not flow records") {
					return // the metric and label answers: refused by the decoder, tested there
				}
				t.Fatal(err)
			}
			m := b.Matrix()
			checkStats(t, m)
			if m.Stats.Records != st.Records {
				t.Fatalf("builder saw %d records, decoder %d", m.Stats.Records, st.Records)
			}
		})
	}

	t.Run("egressip lab record is an inbound response, not egress", func(t *testing.T) {
		m := fold(t, "record-2026-egressip-lab.json", Options{ClusterNetworks: aws})
		if len(m.Entries) != 0 || m.Stats.NotEgress != 1 || m.Stats.Responses != 0 || m.Stats.Sampled != 1 {
			t.Fatalf("entries %q stats %+v", keys(m), m.Stats)
		}
	})
	t.Run("AWS sample: pods to 172.20.0.1:6443 without SYN", func(t *testing.T) {
		// 172.20.0.1 is outside the networks given, and the records carry ACK only.
		m := fold(t, "console-plugin-flow_records_has_dropped.json", Options{ClusterNetworks: aws})
		if len(m.Entries) != 0 || m.Stats.Undecided != 8 || m.UndecidedDistinct != 8 || m.Undecided[0].DstAddress != "172.20.0.1" || m.Undecided[0].DstPort != 6443 {
			t.Fatalf("entries %q stats %+v undecided %+v", keys(m), m.Stats, m.Undecided)
		}
		// With 6443 configured as a server port they become entries, by well-known port.
		m = fold(t, "console-plugin-flow_records_has_dropped.json", Options{ClusterNetworks: aws, Ports: PortPolicy{Extra: map[int]bool{6443: true}}})
		want := "openshift-console/Deployment/console -> 172.20.0.1 TCP/6443 well-known; " +
			"openshift-console-operator/Deployment/console-operator -> 172.20.0.1 TCP/6443 well-known; " +
			"openshift-network-diagnostics/Deployment/network-check-source -> 172.20.0.1 TCP/6443 well-known; " +
			"openshift-service-ca/Deployment/service-ca -> 172.20.0.1 TCP/6443 well-known; " +
			"openshift-service-ca-operator/Deployment/service-ca-operator -> 172.20.0.1 TCP/6443 well-known"
		if got := keys(m); got != want || m.Entries[0].Flows != 4 {
			t.Fatalf("entries\n got %s\nwant %s", got, want)
		}
		// And with 172.20.0.0/16 declared a cluster network they are not egress at all.
		m = fold(t, "console-plugin-flow_records_has_dropped.json", Options{ClusterNetworks: append(aws, netip.MustParsePrefix("172.20.0.0/16"))})
		if len(m.Entries) != 0 || m.Stats.NotEgress != 50 {
			t.Fatalf("stats %+v", m.Stats)
		}
	})
	t.Run("2022 sample: duplicates counted once, etcd peers not egress", func(t *testing.T) {
		m := fold(t, "console-plugin-flows-2022.json", Options{ClusterNetworks: aws})
		if m.Stats.Duplicates != 8 || m.Stats.NotEgress != 42 || len(m.Entries) != 0 {
			t.Fatalf("entries %q stats %+v", keys(m), m.Stats)
		}
	})
	t.Run("without cluster networks the node's ICMP to the machine network looks external", func(t *testing.T) {
		m := fold(t, "console-plugin-flow_records.json", Options{})
		found := false
		for _, e := range m.Entries {
			if e.SrcKind == KindNode && e.SrcWorkload == RoleUnknown && e.DstName == "10.0.1.140" && e.Protocol == ICMP {
				found = true
			}
		}
		if !found {
			t.Fatalf("no Node -> 10.0.1.140 ICMP entry: %q", keys(m))
		}
		if m = fold(t, "console-plugin-flow_records.json", Options{ClusterNetworks: aws}); len(m.Entries) != 0 {
			t.Fatalf("with the AWS networks: %q", keys(m))
		}
	})
}
