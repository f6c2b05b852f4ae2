// Package cluster is everything of the suite that talks to an OpenShift cluster: reading its
// facts, installing NetObserv and a Loki store through OLM (idempotently, only what is
// missing), the canary and resolver workloads, reaching Loki through a client-go port-forward
// with a TokenRequest-minted token, collecting diagnostics and cleaning up.
//
// Configuration comes from the environment (see FromEnv), because openshift-tests runs the
// extension binary with no flags of ours:
//
//	(a capture record)             the ConfigMap egress-flow-matrix/egress-capture that
//	                               `egress-tests-ext capture start` writes: the window starts at
//	                               its windowStart, so that it covers a whole test run.
//	EGRESS_CAPTURE_CLEANUP         "true": once done, the spec removes what `capture start`
//	                               installed (as `capture stop` would). Default false.
//	EGRESS_WINDOW_START            epoch seconds; start of the observation window when there is
//	                               no capture record (both at once is refused).
//	                               Default: the moment flows are seen flowing into Loki.
//	EGRESS_OBSERVE                 how long to keep observing after the canary (Go duration,
//	                               default 2m), so periodic egress (telemetry, NTP) is caught.
//	EGRESS_KEEP_INSTALL            "true" keeps what the suite installed (default: removed).
//	EGRESS_INSTALL_TIMEOUT         how long installs may take to become ready (default 15m).
//	EGRESS_BASELINE_DIR            a baseline/ directory to use instead of the one embedded in
//	                               the binary.
//	EGRESS_SOURCE                  where the window's egress is read from: loki (every flow
//	                               record), flowmetrics (the suite's FlowMetric counters through
//	                               openshift-monitoring's Thanos querier), or both (default):
//	                               the Loki matrix is diffed, and the two must hold the same
//	                               entries, else the run fails listing both sides.
//
//	Loki store, first match wins:
//	EGRESS_LOKI_URL                an existing Loki the test process reaches directly (e.g. a
//	                               Route); a FlowCollector must already write into it. No
//	                               user:password@ in it: it is printed and kept in artifacts.
//	  EGRESS_LOKI_TENANT           its tenant (X-Scope-OrgID), default "netobserv".
//	  EGRESS_LOKI_TOKEN_FILE       a file holding the bearer token to send, if any (https only).
//	  EGRESS_LOKI_CA_FILE          PEM CA bundle for its TLS certificate, if not a public CA.
//	(an existing FlowCollector)    its Loki is used: LokiStack or plain-http Monolithic, reached
//	                               through a port-forward (any other, through EGRESS_LOKI_URL).
//	                               It must sample 1:1 and drop no flow before Loki: no agent
//	                               flowFilter, no processor filter for Loki, logTypes Flows or
//	                               All, no slices AllowList.
//	EGRESS_LOKI_OBJECT_STORAGE_SECRET
//	                               [namespace/]name of an object-storage secret: install the
//	                               Loki Operator and a LokiStack using it.
//	  EGRESS_LOKI_OBJECT_STORAGE_TYPE  s3 (default), azure, gcs, swift, alibabacloud.
//	  EGRESS_LOKI_STORAGE_CLASS    storageClassName of the LokiStack (default: the default
//	                               StorageClass).
//	  EGRESS_LOKISTACK_SIZE        LokiStack size (default 1x.demo).
//	(otherwise)                    a monolithic Loki in the suite's namespace with a PVC, or an
//	                               emptyDir (with a warning) when there is no default StorageClass.
//	  EGRESS_LOKI_IMAGE            image of that Loki (default DefaultLokiImage).
//
//	Workloads:
//	EGRESS_CANARY_HOST             destination the canary connects to (default quay.io).
//	EGRESS_CANARY_PORT             its TCP port (default 443).
//	EGRESS_TOOLS_IMAGE             image with curl and getent for the canary and the resolver
//	                               (default: the cluster's openshift/tools image stream, else
//	                               DefaultToolsImage when the cluster has no such stream).
//	EGRESS_RESOLVE_INTERVAL        how often the resolver resolves the baseline's hostnames
//	                               (default 30s).
//
//	Baseline placeholders (baseline/README.md):
//	EGRESS_BMC_NETWORK             bare metal: the BMCs' CIDRs, comma-separated, or none, for
//	                               {bmcNetwork} (default: the BareMetalHosts' BMC addresses).
//	EGRESS_PLATFORM_API            the platform API's host or address, for {platformAPI}
//	                               (default: vSphere's first vCenter, Nutanix's Prism Central).
package cluster
