package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
)

// GVRFlowMetric is NetObserv's FlowMetric resource.
var GVRFlowMetric = schema.GroupVersionResource{Group: "flows.netobserv.io", Version: "v1alpha1", Resource: "flowmetrics"}

// The cluster's Thanos querier: its web port is behind kube-rbac-proxy, which lets a token
// bound to cluster-monitoring-view query every namespace's metrics, and serves a certificate
// of the service CA.
const (
	monitoringNamespace  = "openshift-monitoring"
	thanosService        = "thanos-querier"
	thanosPort           = 9091
	metricsViewRole      = "cluster-monitoring-view"
	metricsReaderBinding = "egress-flow-matrix-metrics-reader"
	// serviceCAConfigMap is injected into every namespace by the service CA operator.
	serviceCAConfigMap = "openshift-service-ca.crt"
)

// metricsReaderRBAC binds the suite's reader to cluster-monitoring-view.
func metricsReaderRBAC(namespace string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: metricsReaderBinding,
			Labels: map[string]string{"app.kubernetes.io/part-of": "egress-flow-matrix"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: metricsViewRole},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: readerServiceAccount, Namespace: namespace}},
	}
}

// EnsureFlowMetrics creates the egress FlowMetrics in the FlowCollector's namespace, where
// the operator reads them, and records them in t. One that exists with our name but another
// spec is refused: its counters would not be the ones the source reads.
func EnsureFlowMetrics(ctx context.Context, c *Clients, t *Tracker, fms []flowmetrics.FlowMetric) error {
	for _, fm := range fms {
		u, err := toUnstructured(fm)
		if err != nil {
			return err
		}
		cur, err := c.Dynamic.Resource(GVRFlowMetric).Namespace(fm.Metadata.Namespace).Get(ctx, fm.Metadata.Name, metav1.GetOptions{})
		if err == nil {
			if !reflect.DeepEqual(cur.Object["spec"], u.Object["spec"]) {
				return fmt.Errorf("FlowMetric %s/%s exists with another spec than the suite's; fix: delete it (the suite creates it) or run with EGRESS_SOURCE=loki", fm.Metadata.Namespace, fm.Metadata.Name)
			}
			c.progress("  FlowMetric %s/%s exists already with the suite's spec: left as it is", fm.Metadata.Namespace, fm.Metadata.Name)
			continue
		}
		if err := create(ctx, c, t, GVRFlowMetric, u, false); err != nil {
			return fmt.Errorf("%w; fix: the NetObserv operator must serve FlowMetric %s (NetObserv 1.6 or later), or run with EGRESS_SOURCE=loki", err, GVRFlowMetric.Version)
		}
	}
	return nil
}

func toUnstructured(v any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &u.Object); err != nil {
		return nil, err
	}
	return u, nil
}

// PromConn is how the suite reaches the cluster's metrics.
type PromConn struct {
	URL string
	TLS *tls.Config
	// Token returns the bearer token to send; never logged.
	Token func(context.Context) (string, error)
	// Describe says how the querier is reached.
	Describe string
	forward  *Forward
}

// Close stops the port-forward.
func (p *PromConn) Close() error {
	if p == nil || p.forward == nil {
		return nil
	}
	return p.forward.Close()
}

// ConnectThanos binds the suite's reader to cluster-monitoring-view (recorded in t) and
// port-forwards to openshift-monitoring's Thanos querier, verifying its certificate with the
// service CA.
func ConnectThanos(ctx context.Context, c *Clients, t *Tracker) (*PromConn, error) {
	if err := EnsureReader(ctx, c, t); err != nil {
		return nil, err
	}
	if err := createTyped(ctx, c, t, metricsReaderRBAC(SuiteNamespace)); err != nil {
		return nil, err
	}
	cm, err := c.Kube.CoreV1().ConfigMaps(SuiteNamespace).Get(ctx, serviceCAConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the service CA config map %s/%s (the service CA operator injects it into every namespace): %w", SuiteNamespace, serviceCAConfigMap, err)
	}
	pool := x509.NewCertPool()
	if pem := cm.Data["service-ca.crt"]; pem == "" || !pool.AppendCertsFromPEM([]byte(pem)) {
		return nil, fmt.Errorf("config map %s/%s has no PEM certificate under service-ca.crt", SuiteNamespace, serviceCAConfigMap)
	}
	ts := newTokenSource(c.Kube, SuiteNamespace, readerServiceAccount, time.Hour)
	if _, err := ts.Token(ctx); err != nil {
		return nil, err
	}
	fw, err := portForwardService(ctx, c, monitoringNamespace, thanosService, thanosPort)
	if err != nil {
		return nil, err
	}
	return &PromConn{
		URL:   fmt.Sprintf("https://127.0.0.1:%d", fw.LocalPort),
		TLS:   &tls.Config{RootCAs: pool, ServerName: fmt.Sprintf("%s.%s.svc", thanosService, monitoringNamespace), MinVersion: tls.VersionTLS12},
		Token: ts.Token, forward: fw,
		Describe: fmt.Sprintf("port-forward 127.0.0.1:%d -> Thanos querier pod %s/%s, %s", fw.LocalPort, monitoringNamespace, fw.Pod, ts),
	}, nil
}
