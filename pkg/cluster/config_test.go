package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvDefaults(t *testing.T) {
	c, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.WindowStart.IsZero() || c.KeepInstall || c.ExistingLoki != nil || c.ObjectStorageSecret != "" ||
		c.CanaryHost != "quay.io" || c.CanaryPort != 443 || c.Observe != 2*time.Minute || c.InstallTimeout != 15*time.Minute ||
		c.LokiImage != DefaultLokiImage || c.ObjectStorageType != "s3" || c.LokiStackSize != "1x.demo" ||
		c.Source != SourceBoth || !c.UsesLoki() || !c.UsesFlowMetrics() {
		t.Errorf("defaults: %+v", c)
	}
}

func TestFromEnvValues(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"EGRESS_WINDOW_START":               "1767225600",
		"EGRESS_KEEP_INSTALL":               "true",
		"EGRESS_CAPTURE_CLEANUP":            "true",
		"EGRESS_OBSERVE":                    "0s",
		"EGRESS_LOKI_URL":                   "https://loki.example.test/",
		"EGRESS_LOKI_TOKEN_FILE":            "/tok",
		"EGRESS_LOKI_OBJECT_STORAGE_SECRET": "ci/s3",
		"EGRESS_LOKI_OBJECT_STORAGE_TYPE":   "gcs",
		"EGRESS_CANARY_PORT":                "8443",
		"EGRESS_RESOLVE_INTERVAL":           "10s",
		"EGRESS_SOURCE":                     "loki",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.WindowStart.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || !c.KeepInstall || !c.CaptureCleanup || c.Observe != 0 ||
		c.ExistingLoki.URL != "https://loki.example.test" || c.ExistingLoki.Tenant != "netobserv" || c.ExistingLoki.TokenFile != "/tok" ||
		c.ObjectStorageSecretNamespace != "ci" || c.ObjectStorageSecret != "s3" || c.ObjectStorageType != "gcs" ||
		c.CanaryPort != 8443 || c.ResolveInterval != 10*time.Second || c.Source != SourceLoki || c.UsesFlowMetrics() {
		t.Errorf("parsed: %+v %+v", c, c.ExistingLoki)
	}
}

func TestFromEnvRejectsEveryBadValue(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		"EGRESS_WINDOW_START":             "yesterday",
		"EGRESS_KEEP_INSTALL":             "maybe",
		"EGRESS_CAPTURE_CLEANUP":          "later",
		"EGRESS_INSTALL_TIMEOUT":          "0s",
		"EGRESS_LOKI_URL":                 "loki:3100",
		"EGRESS_LOKI_OBJECT_STORAGE_TYPE": "ftp",
		"EGRESS_CANARY_PORT":              "70000",
		"EGRESS_RESOLVE_INTERVAL":         "500ms",
		"EGRESS_SOURCE":                   "prometheus",
	}))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, name := range []string{"EGRESS_WINDOW_START", "EGRESS_KEEP_INSTALL", "EGRESS_CAPTURE_CLEANUP", "EGRESS_INSTALL_TIMEOUT", "EGRESS_LOKI_URL", "EGRESS_LOKI_OBJECT_STORAGE_TYPE", "EGRESS_CANARY_PORT", "EGRESS_RESOLVE_INTERVAL", "EGRESS_SOURCE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

// The Loki URL is printed and written to install.json, and a token must not cross the
// network in clear text.
func TestFromEnvLokiURLSafety(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("sha256~secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"EGRESS_LOKI_URL": "https://admin:s3cretpw@loki.example.test"}, "without user:password@"},
		{map[string]string{"EGRESS_LOKI_URL": "http://loki.example.test:3100", "EGRESS_LOKI_TOKEN_FILE": tok}, "clear text"},
		{map[string]string{"EGRESS_LOKI_URL": "http://loki.example.test:3100", "EGRESS_LOKI_CA_FILE": tok}, "no certificate to verify"},
		{map[string]string{"EGRESS_LOKI_URL": "https://admin:s3cretpw@loki.example.test/%zz"}, "EGRESS_LOKI_URL: want an http:// or https:// URL"},
	} {
		_, err := FromEnv(env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error with %q", tc.env, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") || strings.Contains(err.Error(), "sha256~secret") {
			t.Errorf("%v: a secret is in the error: %v", tc.env, err)
		}
	}
}
