package cluster

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// StoreMode says which kind of Loki holds the flows.
type StoreMode string

const (
	ModeMonolithic StoreMode = "Monolithic" // one Loki pod, plain HTTP on 3100, reached by port-forward
	ModeLokiStack  StoreMode = "LokiStack"  // Loki Operator; reached through its gateway by port-forward
	ModeExisting   StoreMode = "Existing"   // EGRESS_LOKI_URL: reached directly
)

// lokiStackTenant is the gateway tenant NetObserv writes to in openshift-network mode.
const lokiStackTenant = "network"

// Names of what the suite creates for a monolithic Loki.
const (
	monolithicLokiName = "loki"
	monolithicLokiPort = 3100
	lokiDataDir        = "/loki-store"
	lokiConfigDir      = "/etc/loki"
)

// LokiStore is the Loki the run reads flows from.
type LokiStore struct {
	Mode      StoreMode `json:"mode"`
	Namespace string    `json:"namespace,omitempty"`
	Tenant    string    `json:"tenant"`

	// Monolithic: the service to port-forward to, and the URL NetObserv writes to.
	Service      string `json:"service,omitempty"`
	Port         int    `json:"port,omitempty"`
	InClusterURL string `json:"inClusterURL,omitempty"`

	// LokiStack.
	LokiStackName string `json:"lokiStackName,omitempty"`

	// Existing.
	Existing *ExistingLoki `json:"existing,omitempty"`

	// Installed is true when the suite created this Loki.
	Installed bool `json:"installed"`
}

func (s *LokiStore) String() string {
	switch s.Mode {
	case ModeLokiStack:
		return fmt.Sprintf("LokiStack %s/%s (tenant %s)", s.Namespace, s.LokiStackName, s.Tenant)
	case ModeMonolithic:
		return fmt.Sprintf("monolithic Loki service %s/%s:%d (tenant %s)", s.Namespace, s.Service, s.Port, s.Tenant)
	default:
		return fmt.Sprintf("existing Loki %s (tenant %s)", s.Existing.URL, s.Existing.Tenant)
	}
}

// GatewayService is the LokiStack gateway's HTTP service, port 8080, TLS from the service CA.
func (s *LokiStore) GatewayService() string { return s.LokiStackName + "-gateway-http" }

// GatewayCAConfigMap holds the gateway's CA under key service-ca.crt.
func (s *LokiStore) GatewayCAConfigMap() string { return s.LokiStackName + "-gateway-ca-bundle" }

// PlanStore decides which Loki the run uses, in the order the package documentation gives.
// existing is the FlowCollector found on the cluster, or nil.
func PlanStore(cfg *Config, existing *Collector) (*LokiStore, error) {
	switch {
	case cfg.ExistingLoki != nil:
		if existing == nil {
			return nil, fmt.Errorf("EGRESS_LOKI_URL=%s is set but there is no FlowCollector writing into it: create the FlowCollector for that Loki, or unset EGRESS_LOKI_URL so the suite installs its own", cfg.ExistingLoki.URL)
		}
		return &LokiStore{Mode: ModeExisting, Tenant: cfg.ExistingLoki.Tenant, Existing: cfg.ExistingLoki}, nil
	case existing != nil:
		if existing.Store == nil {
			why := existing.Unreachable
			if why == "" {
				why = "the FlowCollector writes to a Loki the suite cannot locate"
			}
			return nil, fmt.Errorf("%s: set EGRESS_LOKI_URL and EGRESS_LOKI_TENANT (with EGRESS_LOKI_TOKEN_FILE and EGRESS_LOKI_CA_FILE for https) to reach it", why)
		}
		return existing.Store, nil
	case cfg.ObjectStorageSecret != "":
		return &LokiStore{Mode: ModeLokiStack, Namespace: netObservNamespace, LokiStackName: "loki", Tenant: lokiStackTenant, Installed: true}, nil
	default:
		return &LokiStore{
			Mode: ModeMonolithic, Namespace: SuiteNamespace, Service: monolithicLokiName, Port: monolithicLokiPort, Tenant: "netobserv",
			InClusterURL: fmt.Sprintf("http://%s.%s.svc:%d/", monolithicLokiName, SuiteNamespace, monolithicLokiPort),
			Installed:    true,
		}, nil
	}
}

// monolithicLokiConfig is the single-binary Loki configuration: multi-tenant (NetObserv
// writes and the suite reads as tenant "netobserv"), filesystem storage in dataDir, in-memory
// ring, limits raised so that the suite's queries are never cut short, and usage reporting
// off (it would itself be egress).
// listenAddress "" listens on all interfaces (in the pod); tests give a loopback address,
// which memberlist binds to as well.
func monolithicLokiConfig(dataDir, listenAddress string, httpPort, grpcPort, memberlistPort int) string {
	memberlist := fmt.Sprintf("memberlist:\n  bind_port: %d\n", memberlistPort)
	if listenAddress != "" {
		memberlist += fmt.Sprintf("  bind_addr: [%q]\n  advertise_addr: %q\n", listenAddress, listenAddress)
	}
	return fmt.Sprintf(`auth_enabled: true
server:
  http_listen_address: %[2]q
  http_listen_port: %[3]d
  grpc_listen_address: %[2]q
  grpc_listen_port: %[4]d
  grpc_server_max_recv_msg_size: 104857600
  grpc_server_max_send_msg_size: 104857600
  log_level: warn
common:
  path_prefix: %[1]s
  replication_factor: 1
  instance_addr: 127.0.0.1
  storage:
    filesystem:
      chunks_directory: %[1]s/chunks
      rules_directory: %[1]s/rules
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: "2024-01-01"
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
%[5]singester:
  lifecycler:
    min_ready_duration: 0s
    final_sleep: 0s
  # Snappy, as LokiStack's ingesters: with Loki's default, gzip, a count over 1M flow
  # records took Loki 15 %% more CPU.
  chunk_encoding: snappy
# The frontend and queriers find the scheduler directly rather than through its ring, which
# takes about 10 s to settle at startup.
query_scheduler:
  use_scheduler_ring: false
limits_config:
  reject_old_samples: false
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
  per_stream_rate_limit: 64MB
  per_stream_rate_limit_burst: 128MB
  max_entries_limit_per_query: 100000
  max_query_series: 100000
  max_global_streams_per_user: 0
  max_query_parallelism: 8
analytics:
  reporting_enabled: false
`, dataDir, listenAddress, httpPort, grpcPort, memberlist)
}

// monolithicLoki holds the objects of the monolithic Loki.
type monolithicLoki struct {
	ConfigMap  *corev1.ConfigMap
	PVC        *corev1.PersistentVolumeClaim // nil: emptyDir (no default StorageClass)
	Deployment *appsv1.Deployment
	Service    *corev1.Service
}

// monolithicLokiObjects builds the monolithic Loki for namespace. It runs under the
// restricted-v2 SCC: no fixed UID (the SCC assigns one), no privilege escalation, all
// capabilities dropped, RuntimeDefault seccomp, non-root.
func monolithicLokiObjects(namespace, image string, persistent bool) *monolithicLoki {
	labels := map[string]string{"app.kubernetes.io/name": monolithicLokiName, "app.kubernetes.io/part-of": "egress-flow-matrix"}
	m := &monolithicLoki{}
	m.ConfigMap = &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: monolithicLokiName + "-config", Namespace: namespace, Labels: labels},
		Data:       map[string]string{"loki.yaml": monolithicLokiConfig(lokiDataDir, "", monolithicLokiPort, 9096, 7946)},
	}
	storage := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	if persistent {
		m.PVC = &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Name: monolithicLokiName + "-store", Namespace: namespace, Labels: labels},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
			},
		}
		storage = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: m.PVC.Name}}
	}
	m.Deployment = &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: monolithicLokiName, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// A ReadWriteOnce volume cannot be held by two pods during a rolling update.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "loki",
						Image: image,
						Args:  []string{"-config.file=" + lokiConfigDir + "/loki.yaml"},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: monolithicLokiPort, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}},
							InitialDelaySeconds: 5, PeriodSeconds: 5,
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Privileged:               ptr.To(false),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: lokiConfigDir, ReadOnly: true},
							{Name: "store", MountPath: lokiDataDir},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: m.ConfigMap.Name}}}},
						{Name: "store", VolumeSource: storage},
					},
				},
			},
		},
	}
	m.Service = &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: monolithicLokiName, Namespace: namespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: monolithicLokiPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	return m
}

// DefaultStorageClass returns the name of the default StorageClass, "" when there is none.
func DefaultStorageClass(ctx context.Context, c *Clients) (string, error) {
	list, err := c.Kube.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list StorageClasses: %w", err)
	}
	for _, sc := range list.Items {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			return sc.Name, nil
		}
	}
	return "", nil
}

// lokiStack* are the LokiStack fields the suite sets, as the Loki Operator documents them.
// Local types rather than the operator's module, which the module proxy does not serve.
type lokiStack struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       lokiStackSpec     `json:"spec"`
}

type lokiStackSpec struct {
	Size             string          `json:"size"`
	StorageClassName string          `json:"storageClassName"`
	Storage          lokiObjStorage  `json:"storage"`
	Tenants          lokiTenants     `json:"tenants"`
	Limits           *lokiLimitsSpec `json:"limits,omitempty"`
	ManagementState  string          `json:"managementState,omitempty"`
}

type lokiObjStorage struct {
	Schemas []lokiSchema  `json:"schemas"`
	Secret  lokiSecretRef `json:"secret"`
}

type lokiSchema struct {
	Version       string `json:"version"`
	EffectiveDate string `json:"effectiveDate"`
}

type lokiSecretRef struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type lokiTenants struct {
	Mode      string               `json:"mode"`
	Openshift *lokiOpenshiftTenant `json:"openshift,omitempty"`
}

type lokiOpenshiftTenant struct {
	AdminGroups []string `json:"adminGroups,omitempty"`
}

type lokiLimitsSpec struct {
	Global *lokiLimits `json:"global,omitempty"`
}

type lokiLimits struct {
	Ingestion *lokiIngestionLimits `json:"ingestion,omitempty"`
	Queries   *lokiQueryLimits     `json:"queries,omitempty"`
}

type lokiIngestionLimits struct {
	IngestionRate      int32 `json:"ingestionRate,omitempty"`
	IngestionBurstSize int32 `json:"ingestionBurstSize,omitempty"`
}

type lokiQueryLimits struct {
	MaxEntriesLimitPerQuery int32  `json:"maxEntriesLimitPerQuery,omitempty"`
	MaxChunksPerQuery       int32  `json:"maxChunksPerQuery,omitempty"`
	MaxQuerySeries          int32  `json:"maxQuerySeries,omitempty"`
	QueryTimeout            string `json:"queryTimeout,omitempty"`
}

// AdminGroups of the LokiStack we create: the defaults plus the suite's service accounts, so
// that the gateway gives the suite's token every namespace's flows rather than a filtered view.
var lokiStackAdminGroups = []string{"system:cluster-admins", "cluster-admin", "dedicated-admin", "system:serviceaccounts:" + SuiteNamespace}

// lokiStackObject is the LokiStack the suite creates for NetObserv: tenants mode
// openshift-network, query limits raised above the defaults (5000 entries, 500 series) that
// would otherwise cut the suite's queries short. now dates the schema (yesterday, as the
// operator's documentation asks for a new install).
func lokiStackObject(store *LokiStore, cfg *Config, storageClass string, now time.Time) (*unstructured.Unstructured, error) {
	ls := lokiStack{
		APIVersion: "loki.grafana.com/v1",
		Kind:       "LokiStack",
		Metadata:   metav1.ObjectMeta{Name: store.LokiStackName, Namespace: store.Namespace},
		Spec: lokiStackSpec{
			Size:             cfg.LokiStackSize,
			StorageClassName: storageClass,
			Storage: lokiObjStorage{
				Schemas: []lokiSchema{{Version: "v13", EffectiveDate: now.UTC().AddDate(0, 0, -1).Format("2006-01-02")}},
				Secret:  lokiSecretRef{Name: cfg.ObjectStorageSecret, Type: cfg.ObjectStorageType},
			},
			Tenants: lokiTenants{Mode: "openshift-network", Openshift: &lokiOpenshiftTenant{AdminGroups: lokiStackAdminGroups}},
			Limits: &lokiLimitsSpec{Global: &lokiLimits{
				Ingestion: &lokiIngestionLimits{IngestionRate: 32, IngestionBurstSize: 64},
				Queries:   &lokiQueryLimits{MaxEntriesLimitPerQuery: 100000, MaxChunksPerQuery: 2000000, MaxQuerySeries: 10000, QueryTimeout: "5m"},
			}},
		},
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ls)
	if err != nil {
		return nil, fmt.Errorf("build LokiStack: %w", err)
	}
	meta := obj["metadata"].(map[string]any)
	delete(meta, "creationTimestamp")
	return &unstructured.Unstructured{Object: obj}, nil
}

// InstallMonolithicLoki creates the monolithic Loki unless its Deployment exists, and waits
// until it is available.
func InstallMonolithicLoki(ctx context.Context, c *Clients, t *Tracker, cfg *Config, store *LokiStore) error {
	if err := ensureSuiteNamespace(ctx, c, t); err != nil {
		return err
	}
	_, err := c.Kube.AppsV1().Deployments(store.Namespace).Get(ctx, monolithicLokiName, metav1.GetOptions{})
	switch {
	case err == nil:
		c.progress("monolithic Loki %s/%s exists: reused", store.Namespace, monolithicLokiName)
		store.Installed = false
	case apierrors.IsNotFound(err):
		sc, err := DefaultStorageClass(ctx, c)
		if err != nil {
			return err
		}
		if sc == "" {
			c.progress("WARNING: no default StorageClass: the monolithic Loki keeps flows in an emptyDir and loses them if its pod restarts")
		}
		m := monolithicLokiObjects(store.Namespace, cfg.LokiImage, sc != "")
		objs := []runtime.Object{m.ConfigMap, m.Service, m.Deployment}
		if m.PVC != nil {
			objs = append([]runtime.Object{m.PVC}, objs...)
		}
		for _, o := range objs {
			if err := createTyped(ctx, c, t, o); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("read Deployment %s/%s: %w", store.Namespace, monolithicLokiName, err)
	}
	return waitFor(ctx, c, "monolithic Loki "+store.Namespace+"/"+monolithicLokiName, 5*time.Second, cfg.InstallTimeout, func(ctx context.Context) (bool, string, error) {
		d, err := c.Kube.AppsV1().Deployments(store.Namespace).Get(ctx, monolithicLokiName, metav1.GetOptions{})
		if err != nil {
			return false, "reading: " + err.Error(), nil
		}
		return d.Status.ReadyReplicas >= 1, fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 1)), nil
	})
}

// installLokiStack installs the Loki Operator and a LokiStack on the object-storage secret
// unless the LokiStack exists, and waits for it to be Ready.
func installLokiStack(ctx context.Context, c *Clients, t *Tracker, cfg *Config, store *LokiStore) error {
	if _, err := ensureOperator(ctx, c, t, lokiOperator, cfg.InstallTimeout); err != nil {
		return err
	}
	if err := ensureNamespace(ctx, c, t, store.Namespace, nil); err != nil {
		return err
	}
	_, err := c.Dynamic.Resource(gvrLokiStack).Namespace(store.Namespace).Get(ctx, store.LokiStackName, metav1.GetOptions{})
	switch {
	case err == nil:
		c.progress("LokiStack %s/%s exists: reused", store.Namespace, store.LokiStackName)
		store.Installed = false
	case apierrors.IsNotFound(err):
		sc := cfg.StorageClass
		if sc == "" {
			if sc, err = DefaultStorageClass(ctx, c); err != nil {
				return err
			}
			if sc == "" {
				return fmt.Errorf("a LokiStack needs a StorageClass and the cluster has no default one: set EGRESS_LOKI_STORAGE_CLASS")
			}
		}
		if err := copyStorageSecret(ctx, c, t, cfg, store.Namespace); err != nil {
			return err
		}
		ls, err := lokiStackObject(store, cfg, sc, time.Now())
		if err != nil {
			return err
		}
		if err := create(ctx, c, t, gvrLokiStack, ls, true); err != nil {
			return err
		}
	default:
		return fmt.Errorf("read LokiStack %s/%s: %w", store.Namespace, store.LokiStackName, err)
	}
	return waitFor(ctx, c, "LokiStack "+store.Namespace+"/"+store.LokiStackName, 10*time.Second, cfg.InstallTimeout, func(ctx context.Context) (bool, string, error) {
		ls, err := c.Dynamic.Resource(gvrLokiStack).Namespace(store.Namespace).Get(ctx, store.LokiStackName, metav1.GetOptions{})
		if err != nil {
			return false, "reading: " + err.Error(), nil
		}
		if st, reason, msg, ok := condition(ls, "Ready"); ok && st == "True" {
			return true, "Ready " + reason, nil
		} else if ok {
			return false, fmt.Sprintf("Ready=%s %s %s", st, reason, msg), nil
		}
		for _, typ := range []string{"Degraded", "Failed", "Pending"} {
			if st, reason, msg, ok := condition(ls, typ); ok && st == "True" {
				return false, fmt.Sprintf("%s: %s %s", typ, reason, msg), nil
			}
		}
		return false, "no conditions yet", nil
	})
}

// copyStorageSecret copies the object-storage secret into the LokiStack's namespace when it
// was given in another one. The secret's content is never printed.
func copyStorageSecret(ctx context.Context, c *Clients, t *Tracker, cfg *Config, namespace string) error {
	src := valueOr(cfg.ObjectStorageSecretNamespace, namespace)
	if _, err := c.Kube.CoreV1().Secrets(namespace).Get(ctx, cfg.ObjectStorageSecret, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read secret %s/%s: %w", namespace, cfg.ObjectStorageSecret, err)
	}
	if src == namespace {
		return fmt.Errorf("object-storage secret %s/%s (EGRESS_LOKI_OBJECT_STORAGE_SECRET) does not exist", namespace, cfg.ObjectStorageSecret)
	}
	s, err := c.Kube.CoreV1().Secrets(src).Get(ctx, cfg.ObjectStorageSecret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read object-storage secret %s/%s (EGRESS_LOKI_OBJECT_STORAGE_SECRET): %w", src, cfg.ObjectStorageSecret, err)
	}
	cp := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: namespace},
		Type:       s.Type,
		Data:       s.Data,
	}
	return createTyped(ctx, c, t, cp)
}

// ensureSuiteNamespace creates the suite's namespace unless it exists.
func ensureSuiteNamespace(ctx context.Context, c *Clients, t *Tracker) error {
	return ensureNamespace(ctx, c, t, SuiteNamespace, map[string]string{"app.kubernetes.io/part-of": "egress-flow-matrix"})
}

func ensureNamespace(ctx context.Context, c *Clients, t *Tracker, name string, labels map[string]string) error {
	_, err := c.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s: %w", name, err)
	}
	return createTyped(ctx, c, t, &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}
