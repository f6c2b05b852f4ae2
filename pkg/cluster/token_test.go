package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestTokenSource(t *testing.T) {
	f := newFakes(t, nil, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	minted := 0
	f.kube.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		minted++
		tr := a.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		if tr.Spec.ExpirationSeconds == nil || *tr.Spec.ExpirationSeconds != 3600 {
			t.Errorf("expiration %v", tr.Spec.ExpirationSeconds)
		}
		tr.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprintf("secret-token-%d", minted), ExpirationTimestamp: metav1.NewTime(now.Add(time.Hour))}
		return true, tr, nil
	})
	ts := newTokenSource(f.kube, SuiteNamespace, readerServiceAccount, time.Hour)
	ts.now = func() time.Time { return now }
	ctx := context.Background()
	tok, err := ts.Token(ctx)
	if err != nil || tok != "secret-token-1" {
		t.Fatalf("%q %v", tok, err)
	}
	now = now.Add(30 * time.Minute)
	if tok, _ = ts.Token(ctx); tok != "secret-token-1" {
		t.Errorf("token renewed with half its life left: %q", tok)
	}
	now = now.Add(15 * time.Minute)
	if tok, _ = ts.Token(ctx); tok != "secret-token-2" {
		t.Errorf("token not renewed with a quarter of its life left: %q", tok)
	}
	if strings.Contains(ts.String(), "secret-token") {
		t.Errorf("String shows the token: %s", ts)
	}

	f = newFakes(t, nil, nil)
	f.kube.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, fmt.Errorf("forbidden")
	})
	_, err = newTokenSource(f.kube, SuiteNamespace, readerServiceAccount, time.Hour).Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "egress-flow-matrix/egress-flow-reader") {
		t.Errorf("error %v", err)
	}
}

func selfSignedPEM(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "service-ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestGatewayTLS(t *testing.T) {
	store := &LokiStore{Mode: ModeLokiStack, Namespace: "netobserv", LokiStackName: "loki"}
	cm := func(data string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "loki-gateway-ca-bundle", Namespace: "netobserv"}, Data: map[string]string{"service-ca.crt": data}}
	}
	f := newFakes(t, []runtime.Object{cm(selfSignedPEM(t))}, nil)
	cfg, err := gatewayTLS(context.Background(), f.kube, store)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "loki-gateway-http.netobserv.svc" || cfg.RootCAs == nil || cfg.InsecureSkipVerify {
		t.Errorf("tls %+v", cfg)
	}
	f = newFakes(t, []runtime.Object{cm("not a pem")}, nil)
	if _, err := gatewayTLS(context.Background(), f.kube, store); err == nil || !strings.Contains(err.Error(), "service-ca.crt") {
		t.Errorf("bad PEM: %v", err)
	}
}

func TestServiceBackend(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "loki-gateway-http", Namespace: "netobserv"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "metrics", Port: 8081, TargetPort: intstr.FromInt32(8081)},
		{Name: "public", Port: 8080, TargetPort: intstr.FromString("public")},
	}}}
	slice := func(name string, ready bool, pod string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "netobserv", Labels: map[string]string{discoveryv1.LabelServiceName: "loki-gateway-http"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](8081)}, {Name: ptr.To("public"), Port: ptr.To[int32](8083)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.128.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: "netobserv"}}},
		}
	}
	f := newFakes(t, []runtime.Object{svc, slice("a", false, "gw-unready"), slice("b", true, "gw-ready")}, nil)
	pod, port, err := serviceBackend(context.Background(), f.Clients, "netobserv", "loki-gateway-http", 8080)
	if err != nil || pod != "gw-ready" || port != 8083 {
		t.Errorf("got %s:%d %v", pod, port, err)
	}
	if _, _, err := serviceBackend(context.Background(), f.Clients, "netobserv", "loki-gateway-http", 9999); err == nil || !strings.Contains(err.Error(), "no port 9999") {
		t.Errorf("unknown port: %v", err)
	}
	f = newFakes(t, []runtime.Object{svc, slice("a", false, "gw-unready")}, nil)
	if _, _, err := serviceBackend(context.Background(), f.Clients, "netobserv", "loki-gateway-http", 8080); err == nil || !strings.Contains(err.Error(), "no ready pod") {
		t.Errorf("no ready pod: %v", err)
	}
	if _, err := portForwardService(context.Background(), f.Clients, "netobserv", "loki-gateway-http", 8080); err == nil {
		t.Error("a port-forward without a REST config must fail")
	}
}
