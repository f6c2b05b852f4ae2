package cluster

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

func TestParseResolverLog(t *testing.T) {
	const interval = 30 * time.Second
	log := `1000 quay.io 1.1.1.1
1000 quay.io 2.2.2.2
1000 gone.example.test -
1030 quay.io 1.1.1.1
1060 Quay.io. 1.1.1.1
1300 quay.io 1.1.1.1
1000 api.openshift.com 2001:db8::1

1030 flappy.example.test -
1060 flappy.example.test 3.3.3.3
`
	res, unresolved, err := ParseResolverLog(strings.NewReader(log), interval)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	want := []Resolution{
		{netip.MustParseAddr("2001:db8::1"), "api.openshift.com", at(1000), at(1030)},
		{netip.MustParseAddr("3.3.3.3"), "flappy.example.test", at(1060), at(1090)},
		{netip.MustParseAddr("1.1.1.1"), "quay.io", at(1000), at(1090)}, // 1000,1030,1060 merge
		{netip.MustParseAddr("1.1.1.1"), "quay.io", at(1300), at(1330)}, // gap > 2 intervals
		{netip.MustParseAddr("2.2.2.2"), "quay.io", at(1000), at(1030)},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("got\n%v\nwant\n%v", res, want)
	}
	if !reflect.DeepEqual(unresolved, []string{"gone.example.test"}) {
		t.Errorf("unresolved %v", unresolved)
	}
	for _, bad := range []string{"1000 quay.io", "x quay.io 1.1.1.1", "1000 quay.io 1.1.1"} {
		if _, _, err := ParseResolverLog(strings.NewReader("1000 a.test 1.2.3.4\n"+bad+"\n"), interval); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: want an error naming line 2, got %v", bad, err)
		}
	}
}

func TestResolvableHosts(t *testing.T) {
	got := ResolvableHosts([]string{"quay.io", "*.quay.io", "Registry.Redhat.io.", "quay.io", "10.0.0.1", "", "cdn0?.quay.io"})
	if !reflect.DeepEqual(got, []string{"quay.io", "registry.redhat.io"}) {
		t.Errorf("got %v", got)
	}
}

// fakeBin puts shell scripts named like commands first on PATH.
func fakeBin(t *testing.T, cmds map[string]string) []string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range cmds {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
}

// The resolver script's output is what ParseResolverLog reads: run it with a stand-in
// getent for one round.
func TestResolverScriptOutputParses(t *testing.T) {
	if _, err := exec.LookPath("awk"); err != nil {
		t.Skip("no awk")
	}
	envv := fakeBin(t, map[string]string{
		"getent": `case "$2" in quay.io) printf '1.1.1.1 STREAM quay.io\n1.1.1.1 DGRAM\n2001:db8::5 STREAM\n';; *) exit 2;; esac`,
		"sleep":  `exit 0`,
	})
	// One round instead of forever.
	cmd := exec.Command("sh", "-c", strings.Replace(resolverScript(time.Second), "while true; do", "for round in 1; do", 1))
	cmd.Env = append(envv, "EGRESS_HOSTS=quay.io nxdomain.example.test")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	res, unresolved, err := ParseResolverLog(strings.NewReader(string(out)), time.Second)
	if err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	if len(res) != 2 || res[0].Host != "quay.io" || res[0].Address.String() != "1.1.1.1" || res[1].Address.String() != "2001:db8::5" ||
		!reflect.DeepEqual(unresolved, []string{"nxdomain.example.test"}) {
		t.Errorf("got %v %v from\n%s", res, unresolved, out)
	}
}

func TestCanaryScript(t *testing.T) {
	run := func(curl string) (string, error) {
		cmd := exec.Command("sh", "-c", canaryScript("quay.io", 443))
		cmd.Env = fakeBin(t, map[string]string{"curl": curl, "sleep": "exit 0"})
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(`echo "$@" >&2; printf 203.0.113.7`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "https://quay.io:443/") || !reflect.DeepEqual(parseCanaryLog(out), []string{"203.0.113.7"}) {
		t.Errorf("output:\n%s", out)
	}
	if out, err := run(`exit 7`); err == nil {
		t.Errorf("all attempts failed but the script succeeded:\n%s", out)
	}
}

func TestRunCanaryFailure(t *testing.T) {
	f := newFakes(t, nil, nil)
	f.kube.PrependReactor("create", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
		j := a.(clienttesting.CreateAction).GetObject().(*batchv1.Job)
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
		return false, nil, nil
	})
	_, err := RunCanary(context.Background(), f.Clients, &Tracker{}, CanaryJob(SuiteNamespace, "tools", "quay.io", 443), time.Second)
	if err == nil || !strings.Contains(err.Error(), "BackoffLimitExceeded") || !strings.Contains(err.Error(), "EGRESS_CANARY_HOST") {
		t.Fatalf("got %v", err)
	}
}

func TestToolsImage(t *testing.T) {
	ctx := context.Background()
	is := u("image.openshift.io/v1", "ImageStream", "openshift", "tools", map[string]any{"status": map[string]any{"tags": []any{
		map[string]any{"tag": "old", "items": []any{map[string]any{"dockerImageReference": "wrong"}}},
		map[string]any{"tag": "latest", "items": []any{map[string]any{"dockerImageReference": "example.test/ocp@sha256:abc"}}},
	}}})
	f := newFakes(t, nil, nil, is)
	if img, err := ToolsImage(ctx, f.Clients, &Config{}); err != nil || img != "example.test/ocp@sha256:abc" {
		t.Errorf("got %q %v", img, err)
	}
	if img, err := ToolsImage(ctx, f.Clients, &Config{ToolsImage: "mine"}); err != nil || img != "mine" {
		t.Errorf("override: %q %v", img, err)
	}
	f = newFakes(t, nil, nil)
	if img, err := ToolsImage(ctx, f.Clients, &Config{}); err != nil || img != DefaultToolsImage {
		t.Errorf("no image stream: %q %v", img, err)
	}
	empty := u("image.openshift.io/v1", "ImageStream", "openshift", "tools", map[string]any{"status": map[string]any{}})
	f = newFakes(t, nil, nil, empty)
	if _, err := ToolsImage(ctx, f.Clients, &Config{}); err == nil || !strings.Contains(err.Error(), "EGRESS_TOOLS_IMAGE") {
		t.Errorf("stream without latest: %v", err)
	}
}

func TestStartResolver(t *testing.T) {
	f := newFakes(t, nil, nil)
	readyOnCreate(f)
	tr := &Tracker{}
	d := ResolverDeployment(SuiteNamespace, "tools", []string{"quay.io", "registry.redhat.io"}, 30*time.Second)
	if err := StartResolver(context.Background(), f.Clients, tr, d, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := createdNames(tr); !reflect.DeepEqual(got, []string{"Deployment egress-flow-matrix/egress-resolver"}) {
		t.Errorf("created %v", got)
	}
	env := d.Spec.Template.Spec.Containers[0].Env
	if len(env) != 1 || env[0].Value != "quay.io registry.redhat.io" || !strings.Contains(d.Spec.Template.Spec.Containers[0].Command[2], "sleep 30") {
		t.Errorf("resolver spec %+v", d.Spec.Template.Spec.Containers[0])
	}
}

func TestRunCanaryReplacesTheLastRunAndReadsItsAddresses(t *testing.T) {
	ctx := context.Background()
	old := CanaryJob(SuiteNamespace, "tools", "quay.io", 443)
	f := newFakes(t, []runtime.Object{old}, nil)
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	f.kube.PrependReactor("create", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
		j := a.(clienttesting.CreateAction).GetObject().(*batchv1.Job)
		j.Status.StartTime = &metav1.Time{Time: start}
		j.Status.CompletionTime = &metav1.Time{Time: start.Add(20 * time.Second)}
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
		return false, nil, nil
	})
	saved := readPodLogs
	t.Cleanup(func() { readPodLogs = saved })
	var selector string
	readPodLogs = func(_ context.Context, _ *Clients, ns, sel string) (string, error) {
		selector = ns + " " + sel
		return "attempt 1 failed (remote none)\nconnected 198.51.100.10\nconnected 198.51.100.10\n", nil
	}
	tr := &Tracker{}
	res, err := RunCanary(ctx, f.Clients, tr, CanaryJob(SuiteNamespace, "tools", "quay.io", 443), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Addresses, []string{"198.51.100.10"}) || !res.Start.Equal(start) || !res.End.Equal(start.Add(20*time.Second)) {
		t.Errorf("result %+v", res)
	}
	if selector != SuiteNamespace+" app.kubernetes.io/name="+CanaryName || len(tr.Created()) != 1 {
		t.Errorf("logs of %q, created %v", selector, createdNames(tr))
	}

	readPodLogs = func(context.Context, *Clients, string, string) (string, error) { return "attempt 1 failed\n", nil }
	if _, err := RunCanary(ctx, f.Clients, &Tracker{}, CanaryJob(SuiteNamespace, "tools", "quay.io", 443), time.Second); err == nil || !strings.Contains(err.Error(), "names no address") {
		t.Errorf("no address: %v", err)
	}
}
