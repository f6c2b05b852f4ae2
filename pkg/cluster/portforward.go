package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// serviceBackend resolves a service port to one ready pod behind it and the pod's port, the
// way kubectl port-forward svc/... does, through the service's EndpointSlices.
func serviceBackend(ctx context.Context, c *Clients, namespace, service string, port int) (pod string, podPort int, err error) {
	svc, err := c.Kube.CoreV1().Services(namespace).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("read service %s/%s: %w", namespace, service, err)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return "", 0, fmt.Errorf("service %s/%s has no port %d", namespace, service, port)
	}
	slices, err := c.Kube.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return "", 0, fmt.Errorf("list EndpointSlices of service %s/%s: %w", namespace, service, err)
	}
	for _, s := range slices.Items {
		target := 0
		for _, p := range s.Ports {
			if p.Port != nil && ptrString(p.Name) == sp.Name {
				target = int(*p.Port)
			}
		}
		if target == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			if ready && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				return ep.TargetRef.Name, target, nil
			}
		}
	}
	return "", 0, fmt.Errorf("service %s/%s port %d has no ready pod behind it", namespace, service, port)
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Forward is a running port-forward to a pod, listening on 127.0.0.1:LocalPort.
type Forward struct {
	LocalPort int
	Pod       string
	stop      chan struct{}
	done      chan error

	closeOnce sync.Once
	closeErr  error
}

// Close stops the forward. Later calls return what the first one did.
func (f *Forward) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		f.closeErr = <-f.done
	})
	return f.closeErr
}

// syncBuilder is a strings.Builder that one goroutine writes while another reads (the
// forwarder's errors, read on a timeout).
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// portForwardService forwards a local port on 127.0.0.1 to the service's port, through the
// API server (websocket, falling back to SPDY like kubectl), so no oc binary and no route
// are needed.
func portForwardService(ctx context.Context, c *Clients, namespace, service string, port int) (*Forward, error) {
	if c.REST == nil {
		return nil, fmt.Errorf("port-forward to %s/%s needs a REST config", namespace, service)
	}
	pod, podPort, err := serviceBackend(ctx, c, namespace, service, port)
	if err != nil {
		return nil, err
	}
	u := c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(c.REST)
	if err != nil {
		return nil, fmt.Errorf("port-forward transport: %w", err)
	}
	spdyDialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, c.REST)
	if err != nil {
		return nil, fmt.Errorf("port-forward websocket dialer: %w", err)
	}
	// The websocket round tripper reports k8s.io/streaming's UpgradeFailureError: the streaming
	// variants throughout, or the fallback to SPDY would never trigger.
	dialer := portforward.NewFallbackDialerForStreaming(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	f := &Forward{Pod: pod, stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan struct{})
	var errOut syncBuilder
	pf, err := portforward.NewOnAddressesForStreaming(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", podPort)}, f.stop, ready, io.Discard, &errOut)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
	}
	go func() { f.done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w %s", namespace, pod, podPort, err, errOut.String())
	case <-ctx.Done():
		close(f.stop)
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		close(f.stop)
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d not ready after a minute: %s", namespace, pod, podPort, errOut.String())
	}
	ports, err := pf.GetPorts()
	if err == nil && len(ports) == 0 {
		err = errors.New("the forwarder listens on none")
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s: no local port: %w", namespace, pod, err)
	}
	f.LocalPort = int(ports[0].Local)
	return f, nil
}
