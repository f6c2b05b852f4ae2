package cluster

import (
	"context"
	"strings"
	"testing"

	configv1 "github.com/openshift/api/config/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func clusterConfig(version string, cluster []string) []runtime.Object {
	var cn []configv1.ClusterNetworkEntry
	for _, c := range cluster {
		cn = append(cn, configv1.ClusterNetworkEntry{CIDR: c, HostPrefix: 23})
	}
	return []runtime.Object{
		&configv1.ClusterVersion{ObjectMeta: metav1.ObjectMeta{Name: "version"}, Status: configv1.ClusterVersionStatus{
			Desired: configv1.Release{Version: "4.21.2"},
			History: []configv1.UpdateHistory{{State: configv1.PartialUpdate, Version: "4.21.2"}, {State: configv1.CompletedUpdate, Version: version}},
		}},
		&configv1.Infrastructure{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: configv1.InfrastructureStatus{
			PlatformStatus:         &configv1.PlatformStatus{Type: configv1.AWSPlatformType},
			ControlPlaneTopology:   configv1.HighlyAvailableTopologyMode,
			InfrastructureTopology: configv1.HighlyAvailableTopologyMode,
		}},
		&configv1.Network{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: configv1.NetworkStatus{
			ClusterNetwork: cn, ServiceNetwork: []string{"172.30.0.0/16"}, NetworkType: "OVNKubernetes",
		}},
		&configv1.Proxy{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}},
	}
}

func node(name, ip string, roles ...string) *corev1.Node {
	labels := map[string]string{"kubernetes.io/os": "linux"}
	for _, r := range roles {
		labels[nodeRolePrefix+r] = ""
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name},
	}}}
}

func TestReadFacts(t *testing.T) {
	installConfig := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-config-v1", Namespace: "kube-system"}, Data: map[string]string{
		"install-config": "apiVersion: v1\nbaseDomain: example.test\nnetworking:\n  machineNetwork:\n  - cidr: 10.0.0.0/16\n  networkType: OVNKubernetes\nplatform:\n  aws:\n    region: us-east-1\n",
	}}
	f := newFakes(t, []runtime.Object{installConfig, node("m0", "10.0.1.10", "master", "control-plane"), node("w0", "10.0.2.10", "worker")}, clusterConfig("4.21.1", []string{"10.128.0.0/14"}))
	facts, err := ReadFacts(context.Background(), f.conf, f.kube)
	if err != nil {
		t.Fatal(err)
	}
	if facts.Version != "4.21.1" || facts.Minor != "4.21" || facts.Platform != "AWS" || facts.ControlPlaneTopology != "HighlyAvailable" ||
		facts.NetworkType != "OVNKubernetes" || strings.Join(facts.ClusterNetworks, ",") != "10.128.0.0/14" ||
		strings.Join(facts.ServiceNetworks, ",") != "172.30.0.0/16" || strings.Join(facts.MachineNetworks, ",") != "10.0.0.0/16" ||
		facts.MachineNetworkSource != "install-config" || facts.HTTPSProxy {
		t.Errorf("facts: %+v", facts)
	}
	if got := facts.RolesSummary(); got != "control-plane=1 master=1 worker=1" {
		t.Errorf("roles %q", got)
	}
	if len(facts.Nodes) != 2 || facts.Nodes[0].Name != "m0" || facts.Nodes[0].Addresses[0] != "10.0.1.10" {
		t.Errorf("nodes %+v", facts.Nodes)
	}
}

// Hosted control planes have no install-config: the node addresses stand in.
func TestReadFactsMachineNetworkFromNodes(t *testing.T) {
	f := newFakes(t, []runtime.Object{node("w0", "10.0.2.10", "worker")}, clusterConfig("4.21.1", []string{"10.128.0.0/14"}))
	facts, err := ReadFacts(context.Background(), f.conf, f.kube)
	if err != nil {
		t.Fatal(err)
	}
	if facts.MachineNetworkSource != "node addresses" || strings.Join(facts.MachineNetworks, ",") != "10.0.2.10/32" {
		t.Errorf("machine networks %v from %s", facts.MachineNetworks, facts.MachineNetworkSource)
	}
}

func TestReadFactsErrors(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t, nil, nil)
	if _, err := ReadFacts(ctx, f.conf, f.kube); err == nil || !strings.Contains(err.Error(), "ClusterVersion") {
		t.Errorf("no ClusterVersion: %v", err)
	}
	f = newFakes(t, nil, clusterConfig("4.21.1", []string{"10.128.0.0/33"}))
	if _, err := ReadFacts(ctx, f.conf, f.kube); err == nil || !strings.Contains(err.Error(), "10.128.0.0/33") {
		t.Errorf("bad CIDR: %v", err)
	}
	objs := clusterConfig("4.21.1", []string{"10.128.0.0/14"})
	objs[0].(*configv1.ClusterVersion).Status = configv1.ClusterVersionStatus{}
	f = newFakes(t, nil, objs)
	if _, err := ReadFacts(ctx, f.conf, f.kube); err == nil || !strings.Contains(err.Error(), "not finished installing") {
		t.Errorf("no version: %v", err)
	}
}

// A cluster-wide proxy goes into the facts without its credentials, and the note says how
// it shapes the matrix; a malformed proxy URL fails without echoing it.
func TestReadFactsProxy(t *testing.T) {
	objs := clusterConfig("4.21.1", []string{"10.128.0.0/14"})
	objs[3].(*configv1.Proxy).Status = configv1.ProxyStatus{
		HTTPProxy: "http://user:s3cret@proxy.example.test:3128", HTTPSProxy: "http://user:s3cret@proxy.example.test:3128/",
		NoProxy: ".cluster.local,10.0.0.0/16",
	}
	f := newFakes(t, []runtime.Object{node("w0", "10.0.2.10", "worker")}, objs)
	facts, err := ReadFacts(context.Background(), f.conf, f.kube)
	if err != nil {
		t.Fatal(err)
	}
	if !facts.HTTPSProxy || facts.Proxy == nil || facts.Proxy.HTTPProxy != "http://proxy.example.test:3128" ||
		facts.Proxy.HTTPSProxy != "http://proxy.example.test:3128" || facts.Proxy.NoProxy != ".cluster.local,10.0.0.0/16" {
		t.Errorf("proxy facts %+v", facts.Proxy)
	}
	note := facts.ProxyNote()
	if strings.Contains(note, "s3cret") || !strings.Contains(note, "cluster-wide proxy http://proxy.example.test:3128:") {
		t.Errorf("note %q", note)
	}
	if strings.Count(note, "proxy.example.test") != 1 {
		t.Errorf("same endpoint listed twice: %q", note)
	}

	objs[3].(*configv1.Proxy).Status = configv1.ProxyStatus{HTTPSProxy: "user:s3cret@no-scheme"}
	f = newFakes(t, nil, objs)
	_, err = ReadFacts(context.Background(), f.conf, f.kube)
	if err == nil || !strings.Contains(err.Error(), "status.httpsProxy") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad proxy URL: %v", err)
	}

	f = newFakes(t, nil, clusterConfig("4.21.1", []string{"10.128.0.0/14"}))
	facts, err = ReadFacts(context.Background(), f.conf, f.kube)
	if err != nil || facts.Proxy != nil || facts.ProxyNote() != "" {
		t.Errorf("no proxy: %+v %v", facts.Proxy, err)
	}
}

func TestReadFactsClusterDomain(t *testing.T) {
	objs := clusterConfig("4.21.1", []string{"10.128.0.0/14"})
	infra := objs[1].(*configv1.Infrastructure)
	infra.Status.APIServerURL = "https://API.c1.example.com:6443"
	infra.Status.PlatformStatus.AWS = &configv1.AWSPlatformStatus{Region: "eu-west-3"}
	objs = append(objs, &configv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Spec: configv1.IngressSpec{Domain: "apps.c1.example.com"}})
	f := newFakes(t, nil, objs)
	facts, err := ReadFacts(context.Background(), f.conf, f.kube)
	if err != nil {
		t.Fatal(err)
	}
	if facts.AppsDomain != "apps.c1.example.com" || facts.APIHost != "api.c1.example.com" || facts.Region != "eu-west-3" {
		t.Errorf("apps %q api %q region %q", facts.AppsDomain, facts.APIHost, facts.Region)
	}
	// No Ingress config (no ingress capability): unknown, not an error; resolving
	// {appsDomain} fails later, naming the fact.
	f = newFakes(t, nil, clusterConfig("4.21.1", []string{"10.128.0.0/14"}))
	if facts, err = ReadFacts(context.Background(), f.conf, f.kube); err != nil || facts.AppsDomain != "" || facts.APIHost != "" {
		t.Errorf("without Ingress: %v %+v", err, facts)
	}
	objs = clusterConfig("4.21.1", []string{"10.128.0.0/14"})
	objs[1].(*configv1.Infrastructure).Status.APIServerURL = "://bad"
	f = newFakes(t, nil, objs)
	if _, err := ReadFacts(context.Background(), f.conf, f.kube); err == nil || !strings.Contains(err.Error(), "apiServerURL") {
		t.Errorf("bad API URL: %v", err)
	}
}

func TestReadMasqueradeNetworks(t *testing.T) {
	ctx := context.Background()
	opNetwork := func(v4, v6 string) *unstructured.Unstructured {
		gw := map[string]any{}
		if v4 != "" {
			gw["ipv4"] = map[string]any{"internalMasqueradeSubnet": v4}
		}
		if v6 != "" {
			gw["ipv6"] = map[string]any{"internalMasqueradeSubnet": v6}
		}
		return u("operator.openshift.io/v1", "Network", "", "cluster", map[string]any{
			"spec": map[string]any{"defaultNetwork": map[string]any{"ovnKubernetesConfig": map[string]any{"gatewayConfig": gw}}}})
	}
	ovnkubeNode := func(annotation *string) *appsv1.DaemonSet {
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ovnkube-node", Namespace: "openshift-ovn-kubernetes"}}
		if annotation != nil {
			ds.Annotations = map[string]string{masqueradeAnnotation: *annotation}
		}
		return ds
	}
	newer, empty := "169.254.0.0/17,fd69::/112", ""
	cases := []struct {
		name      string
		op        *unstructured.Unstructured
		ds        *appsv1.DaemonSet
		want, src string
	}{
		{"set in the operator config", opNetwork("100.254.169.0/29", "fd99::/125"), ovnkubeNode(&newer), "100.254.169.0/29,fd99::/125", MasqueradeFromSpec},
		{"installed on 4.17 or later", opNetwork("", ""), ovnkubeNode(&newer), newer, MasqueradeFromAnnotation},
		{"upgraded from before 4.17", opNetwork("", ""), ovnkubeNode(&empty), "169.254.169.0/29,fd69::/125", MasqueradeFromDefault},
		{"no annotation at all", opNetwork("", ""), ovnkubeNode(nil), "169.254.169.0/29,fd69::/125", MasqueradeFromDefault},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakes(t, []runtime.Object{c.ds}, nil, c.op)
			got, src, err := ReadMasqueradeNetworks(ctx, f.dyn, f.kube, "OVNKubernetes")
			if err != nil || strings.Join(got, ",") != c.want || src != c.src {
				t.Fatalf("got %v from %q (%v), want %s from %q", got, src, err, c.want, c.src)
			}
		})
	}
	f := newFakes(t, nil, nil, opNetwork("not-a-cidr", ""))
	if _, _, err := ReadMasqueradeNetworks(ctx, f.dyn, f.kube, "OVNKubernetes"); err == nil || !strings.Contains(err.Error(), "not-a-cidr") {
		t.Errorf("bad CIDR: %v", err)
	}
	f = newFakes(t, nil, nil)
	if _, _, err := ReadMasqueradeNetworks(ctx, f.dyn, f.kube, "OVNKubernetes"); err == nil || !strings.Contains(err.Error(), "network.operator.openshift.io") {
		t.Errorf("no operator config: %v", err)
	}
	if got, _, err := ReadMasqueradeNetworks(ctx, f.dyn, f.kube, "OpenShiftSDN"); got != nil || err != nil {
		t.Errorf("not OVN-Kubernetes: %v %v", got, err)
	}
}

func TestReadFactsPlatformAPI(t *testing.T) {
	for _, c := range []struct {
		name string
		spec configv1.PlatformSpec
		want string
	}{
		{"vsphere", configv1.PlatformSpec{VSphere: &configv1.VSpherePlatformSpec{VCenters: []configv1.VSpherePlatformVCenterSpec{{Server: "VC1.lab.example.com"}, {Server: "vc2.lab.example.com"}}}}, "vc1.lab.example.com"},
		{"nutanix", configv1.PlatformSpec{Nutanix: &configv1.NutanixPlatformSpec{PrismCentral: configv1.NutanixPrismEndpoint{Address: "10.0.0.5", Port: 9440}}}, "10.0.0.5"},
		{"aws", configv1.PlatformSpec{AWS: &configv1.AWSPlatformSpec{}}, ""},
	} {
		objs := clusterConfig("4.21.1", []string{"10.128.0.0/14"})
		objs[1].(*configv1.Infrastructure).Spec.PlatformSpec = c.spec
		f := newFakes(t, nil, objs)
		facts, err := ReadFacts(context.Background(), f.conf, f.kube)
		if err != nil || facts.PlatformAPI != c.want {
			t.Errorf("%s: platform API %q (%v), want %q", c.name, facts.PlatformAPI, err, c.want)
		}
	}
}

func TestReadBMCNetworks(t *testing.T) {
	ctx := context.Background()
	bmh := func(name, addr string) runtime.Object {
		spec := map[string]any{"online": true}
		if addr != "" {
			spec["bmc"] = map[string]any{"address": addr, "credentialsName": name + "-bmc-secret"}
		}
		return u("metal3.io/v1alpha1", "BareMetalHost", "openshift-machine-api", name, map[string]any{"spec": spec})
	}
	f := newFakes(t, nil, nil,
		bmh("master-0", "redfish-virtualmedia://192.168.111.20/redfish/v1/Systems/1"),
		bmh("master-1", "idrac-virtualmedia+https://192.168.111.21:8443/redfish/v1/Systems/System.Embedded.1"),
		bmh("master-2", "ipmi://[fd2e:6f44:5dd8::10]:623"),
		bmh("worker-0", "192.168.111.23:6230"),
		bmh("worker-1", "redfish://192.168.111.20/redfish/v1/Systems/2"), // the same BMC twice
		bmh("worker-2", ""), // added without a BMC
	)
	got, err := ReadBMCNetworks(ctx, f.dyn, "BareMetal")
	if want := "192.168.111.20/32,192.168.111.21/32,192.168.111.23/32,fd2e:6f44:5dd8::10/128"; err != nil || strings.Join(got, ",") != want {
		t.Fatalf("got %v (%v), want %s", got, err, want)
	}
	if got, err := ReadBMCNetworks(ctx, f.dyn, "AWS"); got != nil || err != nil {
		t.Errorf("AWS: %v %v", got, err)
	}
	// No BMC at all: none, which leaves the BMC entries out of the resolved baseline.
	f = newFakes(t, nil, nil, bmh("worker-2", ""))
	if got, err := ReadBMCNetworks(ctx, f.dyn, "BareMetal"); err != nil || strings.Join(got, ",") != "none" {
		t.Errorf("no BMC: %v %v", got, err)
	}
	// A BMC by hostname cannot be placed: the error names the host and the override.
	f = newFakes(t, nil, nil, bmh("master-0", "redfish://bmc-0.lab.example.com/redfish/v1/Systems/1"))
	if _, err := ReadBMCNetworks(ctx, f.dyn, "BareMetal"); err == nil || !strings.Contains(err.Error(), "master-0 (bmc-0.lab.example.com)") || !strings.Contains(err.Error(), "EGRESS_BMC_NETWORK") {
		t.Errorf("BMC by hostname: %v", err)
	}
	f = newFakes(t, nil, nil, bmh("master-0", "redfish:///redfish/v1"))
	if _, err := ReadBMCNetworks(ctx, f.dyn, "BareMetal"); err == nil || !strings.Contains(err.Error(), "has no host") {
		t.Errorf("BMC without host: %v", err)
	}
}
