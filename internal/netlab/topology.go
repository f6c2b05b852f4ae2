package netlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os/exec"
	"strings"
)

// The lab's address plan. Everything lives inside the lab's own network namespaces; only
// 198.18.0.0/15 stands for the internet, as the project's network rule requires.
var (
	MachineNetwork = netip.MustParsePrefix("10.0.0.0/16")
	PodNetwork     = netip.MustParsePrefix("10.128.0.0/14")
	ServiceNetwork = netip.MustParsePrefix("172.30.0.0/16")
	InternetRange  = netip.MustParsePrefix("198.18.0.0/15")

	routerAddr    = netip.MustParseAddr("10.0.0.1")
	NodeResolver  = netip.MustParseAddr("10.0.0.2")    // the nodes' resolver (the VPC resolver on AWS)
	ClusterDNS    = netip.MustParseAddr("172.30.0.10") // the pods' resolver (the dns-default service)
	canaryAddr    = netip.MustParseAddr("198.19.255.1")
	linkRouter    = netip.MustParseAddr("198.19.255.253") // router ↔ internet link, /30
	linkInternet  = netip.MustParseAddr("198.19.255.254")
	podGateway    = "169.254.1.1" // the pods' next hop, answered by proxy ARP on the node side
	canaryPort    = uint16(9)
	prefixPattern = "etl"
)

// Prefix returns a new unique prefix for a lab's objects: "etl" and 4 hex digits. It is
// short because interface names carry it (at most 15 bytes).
func Prefix() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return prefixPattern + hex.EncodeToString(b)
}

// nodeNet is one emulated node.
type nodeNet struct {
	Node
	index  int
	ns     string
	addr   netip.Addr
	uplink string       // captured: the node's interface to the machine network
	pods   []*podNet    // pods with their own network namespace
	subnet netip.Prefix // the node's pod subnet (hostPrefix /23)
}

// podNet is one pod with its own network namespace.
type podNet struct {
	Workload
	podName string
	ns      string
	addr    netip.Addr
	hostIf  string // captured: the node side of the pod's veth
	node    *nodeNet
}

// externalNet is one host of the internet namespace.
type externalNet struct {
	External
	addr netip.Addr
}

// Topology is the set of namespaces of one lab.
type Topology struct {
	Prefix   string
	router   string
	internet string
	nodes    []*nodeNet
	external []*externalNet
	created  []string // netns created, in order
	ifindex  int
}

// interfaces lists the interfaces a node's agent captures: the node's uplink and the node
// side of each of its pods' veths. One end of each veth only, so no packet counts twice.
func (n *nodeNet) interfaces() []string {
	out := []string{n.uplink}
	for _, p := range n.pods {
		out = append(out, p.hostIf)
	}
	return out
}

// plan assigns names and addresses; nothing is created.
func plan(s *Scenario, prefix string) (*Topology, error) {
	if len(prefix) > 8 {
		return nil, fmt.Errorf("lab prefix %q is longer than 8 bytes: interface names would not fit in 15; fix: use netlab.Prefix()", prefix)
	}
	t := &Topology{Prefix: prefix, router: prefix + "-router", internet: prefix + "-internet"}
	base, err := rand.Int(rand.Reader, big.NewInt(400))
	if err != nil {
		return nil, err
	}
	t.ifindex = 20000 + int(base.Int64())*100
	for i, n := range s.Nodes {
		nn := &nodeNet{Node: n, index: i, ns: fmt.Sprintf("%s-n%d", prefix, i),
			addr:   netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}),
			uplink: fmt.Sprintf("%s-n%d", prefix, i),
			subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 128, byte(2 * i), 0}), 23)}
		t.nodes = append(t.nodes, nn)
	}
	podIndex := 0
	for _, w := range s.Workloads {
		_, i := s.node(w.Node)
		nn := t.nodes[i]
		if w.HostNetwork {
			continue
		}
		k := len(nn.pods)
		if k >= 500 {
			return nil, fmt.Errorf("%s: node %s holds more than 500 pods; fix: spread the workloads over more nodes", s.File, nn.Name)
		}
		a := nn.subnet.Addr().As4()
		off := 10 + k
		a[2] += byte(off / 256)
		a[3] = byte(off % 256)
		p := &podNet{Workload: w, podName: podName(w), ns: fmt.Sprintf("%s-p%d", prefix, podIndex),
			addr: netip.AddrFrom4(a), hostIf: fmt.Sprintf("%s-p%d", prefix, podIndex), node: nn}
		nn.pods = append(nn.pods, p)
		podIndex++
	}
	if len(s.External) > 250*2 {
		return nil, fmt.Errorf("%s: too many external hosts", s.File)
	}
	for j, e := range s.External {
		a := netip.AddrFrom4([4]byte{198, 18, byte(j / 250), byte(1 + j%250)})
		t.external = append(t.external, &externalNet{External: e, addr: a})
	}
	return t, nil
}

// podName is a pod name as its owner kind makes it.
func podName(w Workload) string {
	switch w.Kind {
	case "StatefulSet":
		return w.Name + "-0"
	case "DaemonSet":
		return w.Name + "-x7k2p"
	case "Deployment":
		return w.Name + "-5d9c8b7f6-q2w4e"
	default:
		return w.Name + "-a1b2c"
	}
}

// run executes a command and returns a clear error with its output.
func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ip runs `ip` inside namespace ns ("" for the root namespace).
func ip(ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return run("ip", args...)
}

// nsExec runs a command inside namespace ns.
func nsExec(ns string, args ...string) error {
	return run("ip", append([]string{"netns", "exec", ns}, args...)...)
}

func (t *Topology) nextIndex() int { t.ifindex++; return t.ifindex }

// veth creates a veth pair with unique ifindexes, one end in each namespace.
func (t *Topology) veth(ns1, if1, ns2, if2 string) error {
	return ip(ns1, "link", "add", if1, "index", fmt.Sprint(t.nextIndex()), "type", "veth",
		"peer", "name", if2, "index", fmt.Sprint(t.nextIndex()), "netns", ns2)
}

func (t *Topology) addNetns(name string) error {
	if err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	t.created = append(t.created, name)
	if err := ip(name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// Routers and proxy ARP need forwarding; strict reverse-path filtering would drop the
	// asymmetric paths of SNAT-less pods.
	return nsExec(name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
}

// Build creates the namespaces, links, routes and nft rules. On error what was created is
// removed.
func (t *Topology) Build() (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Teardown())
		}
	}()
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab needs %q: %w; fix: apt-get install iproute2 nftables", tool, err)
		}
	}
	for _, ns := range []string{t.router, t.internet} {
		if err := t.addNetns(ns); err != nil {
			return err
		}
	}
	// The router: a bridge holding the machine network, the nodes' resolver and the
	// cluster DNS service address, and a link to the internet.
	br := t.Prefix + "-br"
	steps := [][]string{
		{"link", "add", br, "index", fmt.Sprint(t.nextIndex()), "type", "bridge"},
		{"addr", "add", netip.PrefixFrom(routerAddr, MachineNetwork.Bits()).String(), "dev", br},
		{"addr", "add", netip.PrefixFrom(NodeResolver, MachineNetwork.Bits()).String(), "dev", br},
		{"addr", "add", netip.PrefixFrom(ClusterDNS, 32).String(), "dev", "lo"},
		{"link", "set", br, "up"},
	}
	for _, s := range steps {
		if err := ip(t.router, s...); err != nil {
			return err
		}
	}
	ri, ir := t.Prefix+"-ri", t.Prefix+"-ir"
	if err := t.veth(t.router, ri, t.internet, ir); err != nil {
		return err
	}
	for _, s := range []struct {
		ns   string
		args []string
	}{
		{t.router, []string{"addr", "add", linkRouter.String() + "/30", "dev", ri}},
		{t.router, []string{"link", "set", ri, "up"}},
		{t.router, []string{"route", "add", InternetRange.String(), "via", linkInternet.String()}},
		{t.internet, []string{"addr", "add", linkInternet.String() + "/30", "dev", ir}},
		{t.internet, []string{"link", "set", ir, "up"}},
		{t.internet, []string{"route", "add", "default", "via", linkRouter.String()}},
		{t.internet, []string{"addr", "add", canaryAddr.String() + "/32", "dev", "lo"}},
	} {
		if err := ip(s.ns, s.args...); err != nil {
			return err
		}
	}
	for _, e := range t.external {
		if err := ip(t.internet, "addr", "add", e.addr.String()+"/32", "dev", "lo"); err != nil {
			return err
		}
	}
	for _, n := range t.nodes {
		if err := t.buildNode(n, br); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) buildNode(n *nodeNet, br string) error {
	if err := t.addNetns(n.ns); err != nil {
		return err
	}
	peer := n.uplink + "r"
	if err := t.veth(n.ns, n.uplink, t.router, peer); err != nil {
		return err
	}
	for _, s := range []struct {
		ns   string
		args []string
	}{
		{t.router, []string{"link", "set", peer, "master", br}},
		{t.router, []string{"link", "set", peer, "up"}},
		{t.router, []string{"route", "add", n.subnet.String(), "via", n.addr.String()}},
		{n.ns, []string{"addr", "add", netip.PrefixFrom(n.addr, MachineNetwork.Bits()).String(), "dev", n.uplink}},
		{n.ns, []string{"link", "set", n.uplink, "up"}},
		{n.ns, []string{"route", "add", "default", "via", routerAddr.String()}},
	} {
		if err := ip(s.ns, s.args...); err != nil {
			return err
		}
	}
	for _, p := range n.pods {
		if err := t.addNetns(p.ns); err != nil {
			return err
		}
		if err := t.veth(n.ns, p.hostIf, p.ns, "eth0"); err != nil {
			return err
		}
		if err := nsExec(n.ns, "sysctl", "-q", "-w", "net.ipv4.conf."+p.hostIf+".proxy_arp=1"); err != nil {
			return err
		}
		for _, s := range []struct {
			ns   string
			args []string
		}{
			{n.ns, []string{"link", "set", p.hostIf, "up"}},
			{n.ns, []string{"route", "add", p.addr.String() + "/32", "dev", p.hostIf}},
			{p.ns, []string{"addr", "add", p.addr.String() + "/32", "dev", "eth0"}},
			{p.ns, []string{"link", "set", "eth0", "up"}},
			{p.ns, []string{"route", "add", podGateway, "dev", "eth0", "scope", "link"}},
			{p.ns, []string{"route", "add", "default", "via", podGateway, "dev", "eth0"}},
		} {
			if err := ip(s.ns, s.args...); err != nil {
				return err
			}
		}
	}
	if n.SNAT {
		// As OVN-Kubernetes does: pod egress leaves with the node address; traffic to the
		// cluster's own networks keeps the pod address.
		rules := fmt.Sprintf(`table ip %s_snat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "%s" ip saddr %s ip daddr != { %s, %s, %s } masquerade
	}
}
`, t.Prefix, n.uplink, n.subnet, MachineNetwork, PodNetwork, ServiceNetwork)
		cmd := exec.Command("ip", "netns", "exec", n.ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft in %s: %w: %s", n.ns, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Teardown removes every namespace the topology created (their links and nft tables go
// with them).
func (t *Topology) Teardown() error {
	var errs []error
	for i := len(t.created) - 1; i >= 0; i-- {
		if err := run("ip", "netns", "delete", t.created[i]); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	t.created = nil
	return errors.Join(errs...)
}

// Cleanup removes what a crashed lab left behind: every network namespace and root
// namespace link whose name starts with prefix (give a full lab prefix, or "etl" for all
// labs: do not while another lab runs).
func Cleanup(prefix string) error {
	if !strings.HasPrefix(prefix, prefixPattern) {
		return fmt.Errorf("cleanup prefix %q: fix: give a lab prefix, which starts with %q", prefix, prefixPattern)
	}
	var errs []error
	nss, err := Leftovers(prefix)
	if err != nil {
		return err
	}
	for _, n := range nss.Netns {
		if err := run("ip", "netns", "delete", n); err != nil {
			errs = append(errs, err)
		}
	}
	for _, l := range nss.Links {
		if err := ip("", "link", "delete", l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Remains lists what of a lab still exists.
type Remains struct {
	Netns []string
	Links []string
}

// Empty reports whether nothing remains.
func (r Remains) Empty() bool { return len(r.Netns)+len(r.Links) == 0 }

// Leftovers lists the network namespaces and root-namespace links named with prefix.
func Leftovers(prefix string) (Remains, error) {
	var r Remains
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return r, fmt.Errorf("ip netns list: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			r.Netns = append(r.Netns, f[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return r, fmt.Errorf("ip link show: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, prefix) {
				r.Links = append(r.Links, name)
			}
		}
	}
	return r, nil
}
