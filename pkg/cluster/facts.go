package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Facts are what the suite reads from the cluster before it starts: they pick the baseline
// files and go into the artifacts so a report says what it was measured on.
type Facts struct {
	Version                string   `json:"version"` // e.g. 4.20.3
	Minor                  string   `json:"minor"`   // e.g. 4.20
	Platform               string   `json:"platform"`
	ControlPlaneTopology   string   `json:"controlPlaneTopology"`
	InfrastructureTopology string   `json:"infrastructureTopology"`
	NetworkType            string   `json:"networkType"`
	ClusterNetworks        []string `json:"clusterNetworks"`
	ServiceNetworks        []string `json:"serviceNetworks"`
	MachineNetworks        []string `json:"machineNetworks"`
	// MachineNetworkSource says where MachineNetworks came from: the install-config, or the
	// node addresses when the install-config is not readable (e.g. hosted control planes).
	MachineNetworkSource string `json:"machineNetworkSource"`
	HTTPSProxy           bool   `json:"httpsProxy"` // a cluster-wide HTTPS proxy is configured
	// Proxy is the cluster-wide proxy in effect (Proxy "cluster" status), nil without one.
	Proxy *Proxy `json:"proxy,omitempty"`
	// AppsDomain is the ingress domain, apps.<cluster>.<base_domain> (Ingress config
	// "cluster" spec.domain); APIHost the external API host (Infrastructure
	// status.apiServerURL); Region the cloud region (status.platformStatus.<cloud>.region).
	// They resolve the baseline's {appsDomain}, {apiHost} and {region}; empty when unknown.
	AppsDomain string `json:"appsDomain,omitempty"`
	APIHost    string `json:"apiHost,omitempty"`
	Region     string `json:"region,omitempty"`
	// PlatformAPI is the host of the platform's API (vSphere's first vCenter, Nutanix's Prism
	// Central; Infrastructure spec.platformSpec): the baseline's {platformAPI}.
	PlatformAPI string `json:"platformAPI,omitempty"`
	// BMCNetworks are the BareMetalHosts' BMC addresses as single-address CIDRs
	// (ReadBMCNetworks), none when the cluster has no BMC addresses; BMCSource says where
	// they come from. They resolve the baseline's {bmcNetwork}.
	BMCNetworks []string `json:"bmcNetworks,omitempty"`
	BMCSource   string   `json:"bmcSource,omitempty"`
	// MasqueradeNetworks are OVN-Kubernetes' masquerade subnets (ReadMasqueradeNetworks),
	// MasqueradeSource where they were read.
	MasqueradeNetworks []string `json:"masqueradeNetworks,omitempty"`
	MasqueradeSource   string   `json:"masqueradeSource,omitempty"`
	Nodes              []Node   `json:"nodes"`
	BaselineFiles      []string `json:"baselineFiles,omitempty"`
}

// Node is one node and the roles its labels give it.
type Node struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	Addresses []string `json:"addresses"` // InternalIP addresses
}

const nodeRolePrefix = "node-role.kubernetes.io/"

// ReadFacts reads ClusterVersion, Infrastructure, Network, Proxy, the install-config's
// machine network and the nodes. A missing singleton is an error: the suite cannot pick a
// baseline without it.
func ReadFacts(ctx context.Context, cfg configclient.Interface, kube kubernetes.Interface) (*Facts, error) {
	f := &Facts{}
	cv, err := cfg.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read ClusterVersion \"version\" (is this an OpenShift cluster and may the user read config.openshift.io?): %w", err)
	}
	f.Version = clusterVersion(cv)
	if f.Version == "" {
		return nil, fmt.Errorf("ClusterVersion \"version\" has neither a completed update in status.history nor status.desired.version: the cluster has not finished installing")
	}
	f.Minor, err = minorOf(f.Version)
	if err != nil {
		return nil, err
	}

	infra, err := cfg.ConfigV1().Infrastructures().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read Infrastructure \"cluster\": %w", err)
	}
	if infra.Status.PlatformStatus != nil && infra.Status.PlatformStatus.Type != "" {
		f.Platform = string(infra.Status.PlatformStatus.Type)
	} else {
		//lint:ignore SA1019 clusters installed before platformStatus existed fill only this field
		f.Platform = string(infra.Status.Platform)
	}
	f.ControlPlaneTopology = string(infra.Status.ControlPlaneTopology)
	f.InfrastructureTopology = string(infra.Status.InfrastructureTopology)
	if f.Platform == "" || f.ControlPlaneTopology == "" {
		return nil, fmt.Errorf("infrastructure \"cluster\" has no platform (%q) or control plane topology (%q) in its status", f.Platform, f.ControlPlaneTopology)
	}
	if f.APIHost, err = apiHost(infra.Status.APIServerURL); err != nil {
		return nil, err
	}
	f.Region = region(infra.Status.PlatformStatus)
	f.PlatformAPI = platformAPI(infra.Spec.PlatformSpec)

	// The ingress domain: absent only on clusters without the ingress capability, whose
	// baseline then cannot use {appsDomain} (resolving it fails, naming this fact).
	ingress, err := cfg.ConfigV1().Ingresses().Get(ctx, "cluster", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("read Ingress \"cluster\": %w", err)
	default:
		f.AppsDomain = strings.ToLower(strings.TrimSuffix(ingress.Spec.Domain, "."))
	}

	network, err := cfg.ConfigV1().Networks().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read Network \"cluster\": %w", err)
	}
	// status is what the network operator applied; spec is the request, used until it has.
	clusterNets, serviceNets := network.Status.ClusterNetwork, network.Status.ServiceNetwork
	f.NetworkType = network.Status.NetworkType
	if len(clusterNets) == 0 {
		clusterNets, serviceNets, f.NetworkType = network.Spec.ClusterNetwork, network.Spec.ServiceNetwork, network.Spec.NetworkType
	}
	for _, cn := range clusterNets {
		f.ClusterNetworks = append(f.ClusterNetworks, cn.CIDR)
	}
	f.ServiceNetworks = append(f.ServiceNetworks, serviceNets...)
	if err := checkCIDRs("Network \"cluster\" cluster network", f.ClusterNetworks); err != nil {
		return nil, err
	}
	if err := checkCIDRs("Network \"cluster\" service network", f.ServiceNetworks); err != nil {
		return nil, err
	}

	proxy, err := cfg.ConfigV1().Proxies().Get(ctx, "cluster", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("read Proxy \"cluster\": %w", err)
	default:
		f.HTTPSProxy = proxy.Status.HTTPSProxy != ""
		f.Proxy, err = proxyOf(proxy.Status)
		if err != nil {
			return nil, err
		}
	}

	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		f.Nodes = append(f.Nodes, nodeOf(n))
	}
	sort.Slice(f.Nodes, func(i, j int) bool { return f.Nodes[i].Name < f.Nodes[j].Name })

	f.MachineNetworks, err = installConfigMachineNetworks(ctx, kube)
	if err != nil {
		return nil, err
	}
	f.MachineNetworkSource = "install-config"
	if len(f.MachineNetworks) == 0 {
		f.MachineNetworkSource = "node addresses"
		for _, n := range f.Nodes {
			for _, a := range n.Addresses {
				if addr, err := netip.ParseAddr(a); err == nil {
					f.MachineNetworks = append(f.MachineNetworks, netip.PrefixFrom(addr, addr.BitLen()).String())
				}
			}
		}
	}
	return f, nil
}

// Proxy is the cluster-wide proxy, its URLs reduced to scheme://host:port: a proxy URL may
// carry user:password@, and facts go into artifacts.
type Proxy struct {
	HTTPProxy  string `json:"httpProxy,omitempty"`
	HTTPSProxy string `json:"httpsProxy,omitempty"`
	NoProxy    string `json:"noProxy,omitempty"`
}

func proxyOf(st configv1.ProxyStatus) (*Proxy, error) {
	if st.HTTPProxy == "" && st.HTTPSProxy == "" {
		return nil, nil
	}
	p := &Proxy{NoProxy: st.NoProxy}
	var err error
	if p.HTTPProxy, err = proxyEndpoint("httpProxy", st.HTTPProxy); err != nil {
		return nil, err
	}
	if p.HTTPSProxy, err = proxyEndpoint("httpsProxy", st.HTTPSProxy); err != nil {
		return nil, err
	}
	return p, nil
}

// proxyEndpoint is raw without its credentials, path or query; the error never shows raw.
func proxyEndpoint(field, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("proxy \"cluster\" status.%s is not a URL with a host (value not shown: it may hold credentials)", field)
	}
	return u.Scheme + "://" + u.Host, nil
}

// ProxyNote says how a cluster-wide proxy shapes the matrix, or "" without one. Behind a
// proxy, the connections the proxy makes for the cluster leave from the proxy, not from the
// cluster: the matrix shows them as flows to the proxy's address and port, and the baseline
// documents them by that destination (from this Proxy config), not by their final hosts.
func (f *Facts) ProxyNote() string {
	if f.Proxy == nil {
		return ""
	}
	var eps []string
	for _, e := range []string{f.Proxy.HTTPProxy, f.Proxy.HTTPSProxy} {
		if e != "" && !slices.Contains(eps, e) {
			eps = append(eps, e)
		}
	}
	return fmt.Sprintf("cluster-wide proxy %s: egress through it shows as flows to the proxy, so the matrix names the proxy and not the hosts behind it; document it in the baseline by the proxy's address and port (noProxy: %q)",
		strings.Join(eps, ", "), f.Proxy.NoProxy)
}

// apiHost is the host of the API server URL ("https://api.c1.example.com:6443").
func apiHost(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("infrastructure \"cluster\" status.apiServerURL %q is not a URL: %v", raw, err)
	}
	return strings.ToLower(u.Hostname()), nil
}

// region is the cloud region of the platforms whose status has one (Azure's has none).
func region(ps *configv1.PlatformStatus) string {
	switch {
	case ps == nil:
	case ps.AWS != nil:
		return ps.AWS.Region
	case ps.GCP != nil:
		return ps.GCP.Region
	case ps.IBMCloud != nil:
		return ps.IBMCloud.Location
	case ps.PowerVS != nil:
		return ps.PowerVS.Region
	}
	return ""
}

// platformAPI is the API endpoint of the virtualization platforms whose Infrastructure spec
// names it. With several vCenters the first is taken: flows to the others are undocumented
// and fail the diff, naming them.
func platformAPI(ps configv1.PlatformSpec) string {
	switch {
	case ps.VSphere != nil && len(ps.VSphere.VCenters) > 0:
		return strings.ToLower(ps.VSphere.VCenters[0].Server)
	case ps.Nutanix != nil:
		return strings.ToLower(ps.Nutanix.PrismCentral.Address)
	}
	return ""
}

// GVRBareMetalHost is metal3's BareMetalHost; the hosts of an installer-provisioned bare
// metal cluster sit in openshift-machine-api.
var GVRBareMetalHost = GVR{Group: "metal3.io", Version: "v1alpha1", Resource: "baremetalhosts"}

// BMCFromHosts says the BMC networks are the BareMetalHosts' BMC addresses.
const BMCFromHosts = "metal3.io BareMetalHosts in openshift-machine-api, spec.bmc.address"

// ReadBMCNetworks returns the BMC addresses of the BareMetalHosts as single-address CIDRs,
// sorted, or ["none"] when no host has a BMC address (hosts added without BMC, or none at
// all). A BMC written as a hostname cannot be placed by address: an error saying to set
// EGRESS_BMC_NETWORK. Only bare metal has BareMetalHosts: other platforms get nil.
func ReadBMCNetworks(ctx context.Context, dyn dynamic.Interface, platform string) ([]string, error) {
	if !strings.EqualFold(platform, "BareMetal") {
		return nil, nil
	}
	list, err := dyn.Resource(GVRBareMetalHost).Namespace("openshift-machine-api").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list BareMetalHosts in openshift-machine-api (their BMC addresses resolve the baseline's {bmcNetwork}; or set EGRESS_BMC_NETWORK): %w", err)
	}
	set := map[string]bool{}
	var byName []string
	for _, h := range list.Items {
		addr, _, _ := unstructured.NestedString(h.Object, "spec", "bmc", "address")
		if addr == "" {
			continue
		}
		host, err := bmcHost(addr)
		if err != nil {
			return nil, fmt.Errorf("BareMetalHost %s: %w", h.GetName(), err)
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			byName = append(byName, h.GetName()+" ("+host+")")
			continue
		}
		a = a.Unmap()
		set[netip.PrefixFrom(a, a.BitLen()).String()] = true
	}
	if len(byName) > 0 {
		return nil, fmt.Errorf("BareMetalHosts %s name their BMC by hostname, which the baseline's {bmcNetwork} cannot hold; fix: set EGRESS_BMC_NETWORK to the CIDRs of the BMCs", strings.Join(byName, ", "))
	}
	if len(set) == 0 {
		return []string{"none"}, nil
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// bmcHost is the host of a BMC address: a URL with a driver scheme (redfish://,
// idrac-virtualmedia+https://, ipmi://host:623) or, for IPMI, a bare host[:port].
func bmcHost(addr string) (string, error) {
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "ipmi://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("BMC address %q has no host; fix: correct spec.bmc.address or set EGRESS_BMC_NETWORK", addr)
	}
	return strings.ToLower(u.Hostname()), nil
}

// GVRNetworkOperator is the network operator's configuration, network.operator.openshift.io.
var GVRNetworkOperator = GVR{Group: "operator.openshift.io", Version: "v1", Resource: "networks"}

// Where OVN-Kubernetes' masquerade subnets come from, in the order they are looked for.
const (
	MasqueradeFromSpec       = "network.operator.openshift.io cluster spec.defaultNetwork.ovnKubernetesConfig.gatewayConfig"
	MasqueradeFromAnnotation = "openshift-ovn-kubernetes/ovnkube-node annotation " + masqueradeAnnotation
	MasqueradeFromDefault    = "ovn-kubernetes' built-in default (a cluster installed before 4.17)"
	masqueradeAnnotation     = "networkoperator.openshift.io/default-masquerade-network-cidrs"
)

// ReadMasqueradeNetworks returns OVN-Kubernetes' masquerade subnets and where they were read:
// the operator config's gatewayConfig.ipv4/ipv6.internalMasqueradeSubnet when set; else the
// defaults cluster-network-operator recorded on the ovnkube-node DaemonSet (it keeps a
// cluster's default across upgrades: 169.254.0.0/17 and fd69::/112 for clusters installed on
// 4.17 or later; pkg/network/ovn_kubernetes.go); else, when it recorded none (an older
// install), ovn-kubernetes' own default, 169.254.169.0/29 and fd69::/125
// (go-controller/pkg/config/config.go). A network type other than OVN-Kubernetes has no
// masquerade range: nil.
func ReadMasqueradeNetworks(ctx context.Context, dyn dynamic.Interface, kube kubernetes.Interface, networkType string) ([]string, string, error) {
	if networkType != "" && networkType != "OVNKubernetes" {
		return nil, "", nil
	}
	op, err := dyn.Resource(GVRNetworkOperator).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("read network.operator.openshift.io \"cluster\" (OVN-Kubernetes' masquerade subnet): %w", err)
	}
	var spec []string
	for _, family := range []string{"ipv4", "ipv6"} {
		v, _, err := unstructured.NestedString(op.Object, "spec", "defaultNetwork", "ovnKubernetesConfig", "gatewayConfig", family, "internalMasqueradeSubnet")
		if err != nil {
			return nil, "", fmt.Errorf("network.operator.openshift.io \"cluster\" gatewayConfig.%s.internalMasqueradeSubnet: %w", family, err)
		}
		if v != "" {
			spec = append(spec, v)
		}
	}
	if len(spec) > 0 {
		return spec, MasqueradeFromSpec, checkCIDRs(MasqueradeFromSpec, spec)
	}
	ds, err := kube.AppsV1().DaemonSets("openshift-ovn-kubernetes").Get(ctx, "ovnkube-node", metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("read DaemonSet openshift-ovn-kubernetes/ovnkube-node (the masquerade subnet the network operator chose): %w", err)
	}
	var recorded []string
	for _, c := range strings.Split(ds.Annotations[masqueradeAnnotation], ",") {
		if c = strings.TrimSpace(c); c != "" {
			recorded = append(recorded, c)
		}
	}
	if len(recorded) > 0 {
		return recorded, MasqueradeFromAnnotation, checkCIDRs(MasqueradeFromAnnotation, recorded)
	}
	return []string{"169.254.169.0/29", "fd69::/125"}, MasqueradeFromDefault, nil
}

// clusterVersion is the version the cluster runs: the newest completed update, else the
// desired version (an install still in progress has no completed entry).
func clusterVersion(cv *configv1.ClusterVersion) string {
	for _, h := range cv.Status.History {
		if h.State == configv1.CompletedUpdate && h.Version != "" {
			return h.Version
		}
	}
	return cv.Status.Desired.Version
}

func minorOf(version string) (string, error) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", fmt.Errorf("cluster version %q is not major.minor[.patch]", version)
	}
	return parts[0] + "." + parts[1], nil
}

func nodeOf(n corev1.Node) Node {
	out := Node{Name: n.Name}
	for k := range n.Labels {
		if role, ok := strings.CutPrefix(k, nodeRolePrefix); ok && role != "" {
			out.Roles = append(out.Roles, role)
		}
	}
	sort.Strings(out.Roles)
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out.Addresses = append(out.Addresses, a.Address)
		}
	}
	return out
}

// installConfigMachineNetworks reads networking.machineNetwork from the install-config the
// installer leaves in kube-system/cluster-config-v1. Absent (hosted control planes, or a user
// without access): nil, and the caller falls back to node addresses.
func installConfigMachineNetworks(ctx context.Context, kube kubernetes.Interface) ([]string, error) {
	cm, err := kube.CoreV1().ConfigMaps("kube-system").Get(ctx, "cluster-config-v1", metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read kube-system/cluster-config-v1: %w", err)
	}
	raw, ok := cm.Data["install-config"]
	if !ok {
		return nil, nil
	}
	var ic struct {
		Networking struct {
			MachineNetwork []struct {
				CIDR string `json:"cidr"`
			} `json:"machineNetwork"`
		} `json:"networking"`
	}
	// Not strict: the install-config has many fields this suite has no use for.
	if err := yaml.Unmarshal([]byte(raw), &ic); err != nil {
		return nil, fmt.Errorf("kube-system/cluster-config-v1 key install-config is not YAML: %w", err)
	}
	var out []string
	for _, mn := range ic.Networking.MachineNetwork {
		out = append(out, mn.CIDR)
	}
	if err := checkCIDRs("install-config networking.machineNetwork", out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkCIDRs(what string, cidrs []string) error {
	for _, c := range cidrs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("%s holds %q, not a CIDR: %w", what, c, err)
		}
	}
	return nil
}

// RolesSummary counts nodes per role, e.g. "control-plane=3 master=3 worker=3".
func (f *Facts) RolesSummary() string {
	counts := map[string]int{}
	for _, n := range f.Nodes {
		for _, r := range n.Roles {
			counts[r]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}

// String is a one-line description for progress output.
func (f *Facts) String() string {
	return fmt.Sprintf("OpenShift %s on %s, control plane %s, infrastructure %s, %s, cluster networks %s, service networks %s, machine networks %s (from %s), nodes: %s",
		f.Version, f.Platform, f.ControlPlaneTopology, f.InfrastructureTopology, f.NetworkType,
		strings.Join(f.ClusterNetworks, ","), strings.Join(f.ServiceNetworks, ","),
		strings.Join(f.MachineNetworks, ","), f.MachineNetworkSource, f.RolesSummary())
}
