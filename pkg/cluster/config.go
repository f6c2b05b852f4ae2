package cluster

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// SuiteNamespace holds everything the suite runs itself: canary, resolver, token service
// account and the monolithic Loki. Its flows are the suite's own and are kept out of the matrix.
const SuiteNamespace = "egress-flow-matrix"

// DefaultLokiImage is the monolithic Loki image; EGRESS_LOKI_IMAGE overrides it. It is
// OpenShift's own Loki build (github.com/openshift/loki, the Loki Operator's operand), which
// OpenShift CI builds and mirrors to quay.io/openshift-logging: a registry CI and
// oc-mirror reach, unlike docker.io.
const DefaultLokiImage = "quay.io/openshift-logging/loki:v3.5.7"

// DefaultToolsImage has curl and getent for the canary and the resolver. It is used only when
// the cluster has no openshift/tools image stream (the payload's tools image, preferred: it
// is already pulled from where the cluster pulls its release); EGRESS_TOOLS_IMAGE overrides both.
const DefaultToolsImage = "quay.io/openshift/origin-tools:latest"

// Config is the suite's configuration, read from the environment by FromEnv.
type Config struct {
	WindowStart time.Time // zero: start when flows are flowing
	Observe     time.Duration
	KeepInstall bool
	// CaptureCleanup makes the spec remove what `capture start` installed once it is done.
	CaptureCleanup bool
	InstallTimeout time.Duration
	BaselineDir    string // "" = the baseline embedded in the binary
	// Source is EGRESS_SOURCE: SourceLoki, SourceFlowMetrics or SourceBoth.
	Source string

	ExistingLoki *ExistingLoki // nil unless EGRESS_LOKI_URL is set

	ObjectStorageSecretNamespace string // "" = the LokiStack's namespace
	ObjectStorageSecret          string
	ObjectStorageType            string
	StorageClass                 string
	LokiStackSize                string
	LokiImage                    string

	CanaryHost      string
	CanaryPort      int
	ToolsImage      string // "" = from the openshift/tools image stream
	ResolveInterval time.Duration

	// BMCNetwork and PlatformAPI override what the cluster says of the baseline's
	// {bmcNetwork} (CIDRs, comma-separated, or none) and {platformAPI} (a host or address).
	BMCNetwork  string
	PlatformAPI string
}

// The sources EGRESS_SOURCE picks.
const (
	SourceLoki        = "loki"
	SourceFlowMetrics = "flowmetrics"
	SourceBoth        = "both"
)

// UsesLoki and UsesFlowMetrics say which sources the run reads.
func (c *Config) UsesLoki() bool        { return c.Source != SourceFlowMetrics }
func (c *Config) UsesFlowMetrics() bool { return c.Source != SourceLoki }

// ExistingLoki is a Loki the test process reaches directly.
type ExistingLoki struct {
	URL       string
	Tenant    string
	TokenFile string
	CAFile    string
}

// FromEnv reads the configuration; getenv is os.Getenv in production and a map in tests.
// Every malformed value is an error naming the variable and what it accepts.
func FromEnv(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{
		Observe:           2 * time.Minute,
		InstallTimeout:    15 * time.Minute,
		BaselineDir:       getenv("EGRESS_BASELINE_DIR"),
		ObjectStorageType: "s3",
		StorageClass:      getenv("EGRESS_LOKI_STORAGE_CLASS"),
		LokiStackSize:     "1x.demo",
		LokiImage:         DefaultLokiImage,
		CanaryHost:        "quay.io",
		CanaryPort:        443,
		ToolsImage:        getenv("EGRESS_TOOLS_IMAGE"),
		ResolveInterval:   30 * time.Second,
		Source:            SourceBoth,
	}
	var errs []string
	bad := func(name, val, want string) {
		errs = append(errs, fmt.Sprintf("%s=%q: want %s", name, val, want))
	}
	if v := getenv("EGRESS_SOURCE"); v != "" {
		switch v {
		case SourceLoki, SourceFlowMetrics, SourceBoth:
			c.Source = v
		default:
			bad("EGRESS_SOURCE", v, "loki, flowmetrics or both")
		}
	}
	if v := getenv("EGRESS_WINDOW_START"); v != "" {
		sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || sec <= 0 {
			bad("EGRESS_WINDOW_START", v, "epoch seconds, e.g. the output of `date +%s`")
		} else {
			c.WindowStart = time.Unix(sec, 0).UTC()
		}
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"EGRESS_OBSERVE", &c.Observe},
		{"EGRESS_INSTALL_TIMEOUT", &c.InstallTimeout},
		{"EGRESS_RESOLVE_INTERVAL", &c.ResolveInterval},
	}
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil || dur < 0 || (dur == 0 && d.name != "EGRESS_OBSERVE") {
				bad(d.name, v, "a positive Go duration such as 90s or 5m")
				continue
			}
			*d.dst = dur
		}
	}
	if c.ResolveInterval < time.Second {
		bad("EGRESS_RESOLVE_INTERVAL", c.ResolveInterval.String(), "at least 1s (the resolver sleeps whole seconds)")
	}
	if v := getenv("EGRESS_KEEP_INSTALL"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("EGRESS_KEEP_INSTALL", v, "true or false")
		}
		c.KeepInstall = b
	}
	if v := getenv("EGRESS_CAPTURE_CLEANUP"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("EGRESS_CAPTURE_CLEANUP", v, "true or false")
		}
		c.CaptureCleanup = b
	}
	if v := getenv("EGRESS_LOKI_URL"); v != "" {
		c.ExistingLoki = &ExistingLoki{
			URL:       strings.TrimRight(v, "/"),
			Tenant:    valueOr(getenv("EGRESS_LOKI_TENANT"), "netobserv"),
			TokenFile: getenv("EGRESS_LOKI_TOKEN_FILE"),
			CAFile:    getenv("EGRESS_LOKI_CA_FILE"),
		}
		// The URL is printed and written to install.json: never with a password in it.
		switch u, err := url.Parse(v); {
		case err != nil, u.Host == "", u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, "EGRESS_LOKI_URL: want an http:// or https:// URL")
		case u.User != nil:
			errs = append(errs, fmt.Sprintf("EGRESS_LOKI_URL=%q: want a URL without user:password@; pass a bearer token with EGRESS_LOKI_TOKEN_FILE", u.Redacted()))
		case u.Scheme == "http" && c.ExistingLoki.TokenFile != "":
			errs = append(errs, "EGRESS_LOKI_TOKEN_FILE with an http:// EGRESS_LOKI_URL: the bearer token would cross the network in clear text; give the https:// URL")
		case u.Scheme == "http" && c.ExistingLoki.CAFile != "":
			errs = append(errs, "EGRESS_LOKI_CA_FILE with an http:// EGRESS_LOKI_URL: there is no certificate to verify; give the https:// URL, or drop the CA file")
		}
	}
	if v := getenv("EGRESS_LOKI_OBJECT_STORAGE_SECRET"); v != "" {
		ns, name, found := strings.Cut(v, "/")
		if !found {
			ns, name = "", v
		}
		if name == "" || strings.Contains(name, "/") {
			bad("EGRESS_LOKI_OBJECT_STORAGE_SECRET", v, "[namespace/]name of a secret")
		}
		c.ObjectStorageSecretNamespace, c.ObjectStorageSecret = ns, name
	}
	if v := getenv("EGRESS_LOKI_OBJECT_STORAGE_TYPE"); v != "" {
		switch v {
		case "s3", "azure", "gcs", "swift", "alibabacloud":
			c.ObjectStorageType = v
		default:
			bad("EGRESS_LOKI_OBJECT_STORAGE_TYPE", v, "one of s3, azure, gcs, swift, alibabacloud")
		}
	}
	c.LokiStackSize = valueOr(getenv("EGRESS_LOKISTACK_SIZE"), c.LokiStackSize)
	c.LokiImage = valueOr(getenv("EGRESS_LOKI_IMAGE"), c.LokiImage)
	c.CanaryHost = valueOr(getenv("EGRESS_CANARY_HOST"), c.CanaryHost)
	if v := getenv("EGRESS_CANARY_PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			bad("EGRESS_CANARY_PORT", v, "a TCP port 1-65535")
		} else {
			c.CanaryPort = p
		}
	}
	c.BMCNetwork = strings.TrimSpace(getenv("EGRESS_BMC_NETWORK"))
	c.PlatformAPI = strings.ToLower(strings.TrimSpace(getenv("EGRESS_PLATFORM_API")))
	if len(errs) > 0 {
		return nil, fmt.Errorf("bad suite configuration (see the package documentation of pkg/cluster):\n  %s", strings.Join(errs, "\n  "))
	}
	return c, nil
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
