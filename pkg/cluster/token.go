package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Names of the identity the suite reads Loki with.
const (
	readerServiceAccount = "egress-flow-reader"
	readerClusterRole    = "egress-flow-matrix-loki-reader"
)

// readerRBAC is the service account that reads flows and what it may do: read the network
// tenant of a LokiStack gateway (the gateway authorizes "get" on loki.grafana.com "network",
// resource name "logs", in openshift-network mode).
func readerRBAC(namespace string) (*corev1.ServiceAccount, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	labels := map[string]string{"app.kubernetes.io/part-of": "egress-flow-matrix"}
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: readerServiceAccount, Namespace: namespace, Labels: labels},
	}
	role := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: readerClusterRole, Labels: labels},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"loki.grafana.com"}, Resources: []string{"network"}, ResourceNames: []string{"logs"}, Verbs: []string{"get"},
		}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: readerClusterRole, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: readerClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: readerServiceAccount, Namespace: namespace}},
	}
	return sa, role, binding
}

// EnsureReader creates the reader's service account and RBAC unless they exist.
func EnsureReader(ctx context.Context, c *Clients, t *Tracker) error {
	if err := ensureSuiteNamespace(ctx, c, t); err != nil {
		return err
	}
	sa, role, binding := readerRBAC(SuiteNamespace)
	for _, o := range []runtime.Object{sa, role, binding} {
		if err := createTyped(ctx, c, t, o); err != nil {
			return err
		}
	}
	return nil
}

// tokenSource mints short-lived service-account tokens with the TokenRequest API and renews
// them when a third of their life is left. The token never leaves Token(): String and errors
// name the account only.
type tokenSource struct {
	kube      kubernetes.Interface
	namespace string
	name      string
	ttl       time.Duration
	now       func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// newTokenSource returns a token source for namespace/name with tokens valid for ttl.
func newTokenSource(kube kubernetes.Interface, namespace, name string, ttl time.Duration) *tokenSource {
	return &tokenSource{kube: kube, namespace: namespace, name: name, ttl: ttl, now: time.Now}
}

func (s *tokenSource) String() string {
	return fmt.Sprintf("token of service account %s/%s", s.namespace, s.name)
}

// Token returns a valid token, minting a new one when needed.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Add(s.ttl/3).Before(s.expires) {
		return s.token, nil
	}
	tr, err := s.kube.CoreV1().ServiceAccounts(s.namespace).CreateToken(ctx, s.name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(s.ttl.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request a %s: %w", s, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("TokenRequest for service account %s/%s returned no token", s.namespace, s.name)
	}
	s.token = tr.Status.Token
	s.expires = tr.Status.ExpirationTimestamp.Time
	if s.expires.IsZero() {
		s.expires = s.now().Add(s.ttl)
	}
	return s.token, nil
}

// gatewayTLS is the TLS configuration for a LokiStack gateway: its CA from the
// <name>-gateway-ca-bundle config map (service CA), and the service's DNS name as server
// name, since a port-forward connects to 127.0.0.1.
func gatewayTLS(ctx context.Context, kube kubernetes.Interface, store *LokiStore) (*tls.Config, error) {
	cm, err := kube.CoreV1().ConfigMaps(store.Namespace).Get(ctx, store.GatewayCAConfigMap(), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the LokiStack gateway CA config map %s/%s: %w", store.Namespace, store.GatewayCAConfigMap(), err)
	}
	pem := cm.Data["service-ca.crt"]
	pool := x509.NewCertPool()
	if pem == "" || !pool.AppendCertsFromPEM([]byte(pem)) {
		return nil, fmt.Errorf("config map %s/%s has no PEM certificate under service-ca.crt", store.Namespace, store.GatewayCAConfigMap())
	}
	return &tls.Config{
		RootCAs:    pool,
		ServerName: fmt.Sprintf("%s.%s.svc", store.GatewayService(), store.Namespace),
		MinVersion: tls.VersionTLS12,
	}, nil
}
