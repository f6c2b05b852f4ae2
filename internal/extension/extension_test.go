package extension

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/openshift-eng/openshift-tests-extension/pkg/cmd"
	e "github.com/openshift-eng/openshift-tests-extension/pkg/extension"
	et "github.com/openshift-eng/openshift-tests-extension/pkg/extension/extensiontests"
	"github.com/spf13/cobra"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
)

func entry(host string, observed bool) string {
	obs := "false"
	if observed {
		obs = "true"
	}
	return "  - component: Test\n    source:\n      nodeRole: \"*\"\n    destination:\n      host: " + host +
		"\n    protocol: TCP\n    port: \"443\"\n    observed: " + obs + "\n    reason: test entry\n"
}

func tree(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte("entries:\n" + body)}
	}
	return m
}

func TestInformingUntilObserved(t *testing.T) {
	cases := []struct {
		name      string
		files     map[string]string
		informing bool
		why       string
	}{
		{"nothing observed", map[string]string{"4.21/common.yaml": entry("a.example.test", false), "4.21/platform/aws.yaml": entry("b.example.test", false)}, true, "none of its 2 entries"},
		{"observed in a platform file", map[string]string{"4.21/common.yaml": entry("a.example.test", false), "4.21/platform/aws.yaml": entry("b.example.test", true)}, false, "1 of 2 entries observed"},
		// Only the newest version counts: an older release's observations say nothing of this one.
		{"older version observed", map[string]string{"4.20/common.yaml": entry("a.example.test", true), "4.21/common.yaml": entry("a.example.test", false)}, true, "baseline 4.21"},
		// Platform files are alternatives: the same entry in two of them is no duplicate.
		{"same entry in two platforms", map[string]string{"4.21/common.yaml": entry("a.example.test", false),
			"4.21/platform/aws.yaml": entry("b.example.test", true), "4.21/platform/gcp.yaml": entry("b.example.test", true)}, false, "2 of 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why, err := Informing(tree(c.files))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.informing || !strings.Contains(why, c.why) {
				t.Errorf("informing %v (%s), want %v (%s)", got, why, c.informing, c.why)
			}
		})
	}
	if _, _, err := Informing(fstest.MapFS{}); err == nil {
		t.Error("empty baseline accepted")
	}
	if _, _, err := Informing(tree(map[string]string{"4.21/common.yaml": "  - component: [\n"})); err == nil || !strings.Contains(err.Error(), "4.21/common.yaml") {
		t.Errorf("malformed baseline: %v", err)
	}
}

// runOTE runs one of OTE's commands on the registry as the binary does; OTE writes to
// os.Stdout, so that is what is read.
func runOTE(t *testing.T, args ...string) string {
	t.Helper()
	reg, err := Registry()
	if err != nil {
		t.Fatal(err)
	}
	root := &cobra.Command{Use: "egress-tests-ext", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cmd.DefaultExtensionCommands(reg)...)
	root.SetArgs(args)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	runErr := root.Execute()
	os.Stdout = stdout
	_ = w.Close()
	out := <-done
	if runErr != nil {
		t.Fatalf("%v: %v\n%s", args, runErr, out)
	}
	return string(out)
}

func listed(t *testing.T, args ...string) []et.ExtensionTestSpec {
	t.Helper()
	var specs []et.ExtensionTestSpec
	sc := bufio.NewScanner(strings.NewReader(runOTE(t, append([]string{"list", "-o", "jsonl"}, args...)...)))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var s et.ExtensionTestSpec
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		specs = append(specs, s)
	}
	return specs
}

func TestListMetadata(t *testing.T) {
	informing, why, err := Informing(baselinefs.FS)
	if err != nil {
		t.Fatal(err)
	}
	want := et.LifecycleBlocking
	if informing {
		want = et.LifecycleInforming
	}
	specs := listed(t)
	if len(specs) != 1 {
		t.Fatalf("listed %d specs", len(specs))
	}
	s := specs[0]
	if s.Lifecycle != want || s.Labels.Has(InformingLabel) != informing {
		t.Errorf("lifecycle %s labels %v; the embedded baseline says %s", s.Lifecycle, s.Labels, why)
	}
	if s.EnvironmentSelector.IsEmpty() || !strings.Contains(s.EnvironmentSelector.Exclude, `externalConnectivity=="Disconnected"`) {
		t.Errorf("environment selector %+v", s.EnvironmentSelector)
	}
	if d, err := time.ParseDuration(s.Resources.Timeout); err != nil || d != SpecTimeout || d <= 15*time.Minute+5*time.Minute {
		t.Errorf("timeout %q (%v): must cover install 15m + first flow 5m + observation and collection", s.Resources.Timeout, err)
	}

	// openshift-tests passes the cluster's environment: disconnected and MicroShift clusters
	// get nothing, a proxied one gets the spec.
	if got := listed(t, "--external-connectivity", "Disconnected"); len(got) != 0 {
		t.Errorf("listed for a disconnected cluster: %v", got)
	}
	if got := listed(t, "--topology", "microshift"); len(got) != 0 {
		t.Errorf("listed for MicroShift: %v", got)
	}
	if got := listed(t, "--external-connectivity", "Proxied", "--platform", "aws"); len(got) != 1 {
		t.Errorf("not listed for a proxied AWS cluster: %v", got)
	}
}

func TestInfoAndImages(t *testing.T) {
	var images []e.Image
	if err := json.Unmarshal([]byte(runOTE(t, "images")), &images); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, im := range images {
		refs = append(refs, im.Registry+"/"+im.Name+":"+im.Version)
	}
	if strings.Join(refs, " ") != cluster.DefaultLokiImage+" "+cluster.DefaultToolsImage {
		t.Errorf("images %v", refs)
	}
	for _, r := range refs {
		if strings.HasPrefix(r, "docker.io/") {
			t.Errorf("%s: docker.io is not mirrored by OpenShift CI", r)
		}
	}
	var info e.Extension
	if err := json.Unmarshal([]byte(runOTE(t, "info")), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Suites) != 1 || info.Suites[0].Name != SuiteName || info.Suites[0].TestTimeout == nil || *info.Suites[0].TestTimeout != SpecTimeout {
		t.Errorf("suites %+v", info.Suites)
	}
}

func TestParseImage(t *testing.T) {
	if im, err := parseImage(3, "quay.io/openshift-logging/loki:v3.5.7"); err != nil || im.Registry != "quay.io" || im.Name != "openshift-logging/loki" || im.Version != "v3.5.7" || im.Index != 3 {
		t.Errorf("%+v %v", im, err)
	}
	for _, bad := range []string{"loki:3.5", "quay.io/loki", "quay.io/x@sha256:abc"} {
		if _, err := parseImage(0, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
