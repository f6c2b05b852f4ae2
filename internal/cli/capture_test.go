package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/spf13/cobra"

	"github.com/openshift/egress-tests-ext/pkg/capture"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
)

func runCapture(t *testing.T, connect clientsFunc, args ...string) (string, string, int) {
	t.Helper()
	root := &cobra.Command{Use: "egress-tests-ext", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newCaptureCmd(connect))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"capture"}, args...))
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("Error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

// Without a cluster every capture command exits 2 and says how to give one.
func TestCaptureWithoutCluster(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, verb := range []string{"start", "status", "stop"} {
		_, stderr, code := run(t, "capture", verb)
		if code != CodeError || !strings.Contains(stderr, "capture "+verb+": no cluster") || !strings.Contains(stderr, "set KUBECONFIG") {
			t.Errorf("%s: exit %d, %s", verb, code, stderr)
		}
	}
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	if _, stderr, code := run(t, "capture", "status"); code != CodeError || !strings.Contains(stderr, "KUBECONFIG=/nonexistent/kubeconfig cannot be loaded") {
		t.Errorf("bad KUBECONFIG: exit %d, %s", code, stderr)
	}
}

func fakeClients(objs ...runtime.Object) clientsFunc {
	c := &cluster.Clients{Kube: kubefake.NewClientset(objs...), Config: configfake.NewClientset(),
		Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())}
	return func() (*cluster.Clients, error) { return c, nil }
}

func TestCaptureStatusAndStop(t *testing.T) {
	if _, stderr, code := runCapture(t, fakeClients(), "status"); code != CodeError || !strings.Contains(stderr, "no capture is running") {
		t.Errorf("status without record: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCapture(t, fakeClients(), "stop"); code != CodeError || !strings.Contains(stderr, "nothing was started") {
		t.Errorf("stop without record: exit %d, %s", code, stderr)
	}
	record := `{"version":1,"windowStart":"2026-12-02T08:00:00Z","windowStartSource":"test","startedAt":"2026-12-02T07:55:00Z",
"store":{"mode":"Monolithic","namespace":"egress-flow-matrix","service":"loki","port":3100,"tenant":"netobserv","installed":true},
"collectorCreated":true,"created":[{"kind":"Namespace","name":"egress-flow-matrix","waitGone":true},{"kind":"ConfigMap","namespace":"egress-flow-matrix","name":"loki-config"}]}`
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cluster.SuiteNamespace}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: cluster.SuiteNamespace, Name: "loki-config"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: cluster.SuiteNamespace, Name: capture.RecordName}, Data: map[string]string{capture.RecordKey: record}},
	}
	connect := fakeClients(objs...)
	out, stderr, code := runCapture(t, connect, "status")
	if code != CodeOK || !strings.Contains(out, "window start: 2026-12-02T08:00:00Z") || !strings.Contains(out, "ConfigMap egress-flow-matrix/loki-config") {
		t.Fatalf("status: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = runCapture(t, connect, "stop", "--timeout", "1s")
	if code != CodeOK || !strings.Contains(out, "removed 2 objects") {
		t.Fatalf("stop: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := runCapture(t, connect, "status"); code != CodeError || !strings.Contains(stderr, "no capture is running") {
		t.Errorf("status after stop: exit %d, %s", code, stderr)
	}
}
