package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"
)

// lokiGatewayPort is the LokiStack gateway's HTTP port.
const lokiGatewayPort = 8080

// LokiConn is how the test process reaches the Loki of the run: a base URL under which
// /loki/api/v1/... is served, the tenant, TLS and bearer token. Close ends its port-forward.
type LokiConn struct {
	URL    string
	Tenant string
	TLS    *tls.Config // nil: plain HTTP, or the system roots for an https URL
	// Token returns the bearer token to send; nil sends none. Tokens are never logged.
	Token func(context.Context) (string, error)
	// Describe says how Loki is reached, for progress output and artifacts.
	Describe string
	forward  *Forward
}

// Close stops the port-forward, if any.
func (l *LokiConn) Close() error {
	if l == nil || l.forward == nil {
		return nil
	}
	return l.forward.Close()
}

// ConnectLoki opens the way to the store: directly for an existing Loki, else through a
// port-forward to the monolithic service or to the LokiStack gateway (with a token of the
// suite's reader service account, which EnsureReader must have created, and the gateway's CA).
func ConnectLoki(ctx context.Context, c *Clients, store *LokiStore) (*LokiConn, error) {
	switch store.Mode {
	case ModeExisting:
		return existingConn(store.Existing)
	case ModeMonolithic:
		fw, err := portForwardService(ctx, c, store.Namespace, store.Service, store.Port)
		if err != nil {
			return nil, err
		}
		return &LokiConn{
			URL: fmt.Sprintf("http://127.0.0.1:%d", fw.LocalPort), Tenant: store.Tenant, forward: fw,
			Describe: fmt.Sprintf("port-forward 127.0.0.1:%d -> pod %s/%s (service %s:%d)", fw.LocalPort, store.Namespace, fw.Pod, store.Service, store.Port),
		}, nil
	case ModeLokiStack:
		tlsCfg, err := gatewayTLS(ctx, c.Kube, store)
		if err != nil {
			return nil, err
		}
		ts := newTokenSource(c.Kube, SuiteNamespace, readerServiceAccount, time.Hour)
		if _, err := ts.Token(ctx); err != nil {
			return nil, err
		}
		fw, err := portForwardService(ctx, c, store.Namespace, store.GatewayService(), lokiGatewayPort)
		if err != nil {
			return nil, err
		}
		return &LokiConn{
			URL:    fmt.Sprintf("https://127.0.0.1:%d/api/logs/v1/%s", fw.LocalPort, store.Tenant),
			Tenant: store.Tenant, TLS: tlsCfg, Token: ts.Token, forward: fw,
			Describe: fmt.Sprintf("port-forward 127.0.0.1:%d -> LokiStack gateway pod %s/%s, %s", fw.LocalPort, store.Namespace, fw.Pod, ts),
		}, nil
	}
	return nil, fmt.Errorf("unknown Loki store mode %q", store.Mode)
}

func existingConn(e *ExistingLoki) (*LokiConn, error) {
	conn := &LokiConn{URL: e.URL, Tenant: e.Tenant, Describe: "EGRESS_LOKI_URL " + e.URL}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("EGRESS_LOKI_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("EGRESS_LOKI_CA_FILE=%s holds no PEM certificate", e.CAFile)
		}
		conn.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if e.TokenFile != "" {
		file := e.TokenFile
		// Read on every use: a projected token file is rotated underneath us.
		conn.Token = func(context.Context) (string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("EGRESS_LOKI_TOKEN_FILE: %w", err)
			}
			tok := strings.TrimSpace(string(b))
			if tok == "" {
				return "", fmt.Errorf("EGRESS_LOKI_TOKEN_FILE=%s is empty", file)
			}
			return tok, nil
		}
		if _, err := conn.Token(context.Background()); err != nil {
			return nil, err
		}
	}
	return conn, nil
}
