package firewall

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// The enforcement test lives entirely in two network namespaces it creates, joined by a veth
// pair created inside them (the host never sees an interface), on benchmarking addresses
// (198.18.0.0/15, 2001:2::/48) that stand in for documented and undocumented destinations.
const (
	clientV4 = "198.18.0.1"
	serverV4 = "198.18.0.2"
	clientV6 = "2001:2:0:1::1"
	serverV6 = "2001:2:0:1::2"
)

type probe struct {
	network string // tcp or udp
	addr    netip.AddrPort
	allowed bool
	why     string
}

func enforcementBaseline() *baseline.Baseline {
	w := node("worker")
	return &baseline.Baseline{Files: []string{"enforcement"}, Entries: []baseline.Entry{
		entry(0, "A", w, cidr("198.18.1.0/24"), "TCP", "443"),
		entry(1, "B", w, cidr("198.18.2.10/32"), "UDP", "53"),
		entry(2, "C", node("*"), cidr("198.18.3.0/24"), "TCP", "30000-30010"),
		entry(3, "D", w, host("registry.test"), "TCP", "8443"),
		entry(4, "E", w, cidr("2001:2:0:5::/64"), "UDP", "5353"),
		entry(5, "F", node("control-plane"), cidr("198.18.7.7/32"), "TCP", "443"),
		entry(6, "G", w, baseline.Destination{SubnetLabel: "Machines"}, "TCP", "9999"),
		entry(7, "H", w, cidr("198.18.6.6/32"), "ICMP", ""),
	}}
}

func enforcementProbes() []probe {
	ap := netip.MustParseAddrPort
	return []probe{
		{"tcp", ap("198.18.1.10:443"), true, "documented CIDR and port"},
		{"udp", ap("198.18.2.10:53"), true, "documented UDP host"},
		{"tcp", ap("198.18.3.3:30000"), true, "range start"},
		{"tcp", ap("198.18.3.3:30010"), true, "range end"},
		{"tcp", ap("198.18.4.4:8443"), true, "hostname resolved at generation (IPv4)"},
		{"tcp", ap("[2001:2:0:4::4]:8443"), true, "hostname resolved at generation (IPv6)"},
		{"udp", ap("[2001:2:0:5::5]:5353"), true, "documented IPv6 UDP"},
		{"tcp", ap(serverV4 + ":9999"), true, "cluster machine network"},
		{"tcp", ap("[" + serverV6 + "]:9999"), true, "cluster machine network (IPv6)"},
		{"icmp", ap("198.18.6.6:0"), true, "documented ICMP"},

		{"tcp", ap("198.18.1.10:80"), false, "documented address, other port"},
		{"udp", ap("198.18.2.10:54"), false, "documented UDP host, other port"},
		{"tcp", ap("198.18.2.10:53"), false, "documented port, other protocol"},
		{"tcp", ap("198.18.3.3:30011"), false, "just past the range"},
		{"tcp", ap("198.18.5.5:443"), false, "undocumented address"},
		{"tcp", ap("198.18.4.5:8443"), false, "next to a resolved address"},
		{"tcp", ap("198.18.7.7:443"), false, "documented for control-plane only"},
		{"udp", ap("[2001:2:0:5::5]:5354"), false, "documented IPv6 host, other port"},
		{"tcp", ap("[2001:2:0:9::9]:443"), false, "undocumented IPv6 address"},
		{"icmp", ap("198.18.1.10:0"), false, "ICMP to a TCP-only destination"},
	}
}

func TestEnforcement(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft not found: install the nftables package: %v", err)
	}
	client := newNetns(t, "cli")
	server := newNetns(t, "srv")
	inNetns(t, client, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", server)
	for _, c := range [][]string{
		{client, "ip", "addr", "add", clientV4 + "/24", "dev", "eth0"},
		{client, "ip", "-6", "addr", "add", clientV6 + "/64", "dev", "eth0", "nodad"},
		{client, "ip", "link", "set", "eth0", "up"},
		{server, "ip", "addr", "add", serverV4 + "/24", "dev", "eth0"},
		{server, "ip", "-6", "addr", "add", serverV6 + "/64", "dev", "eth0", "nodad"},
		{server, "ip", "link", "set", "eth0", "up"},
		// Only the test ranges are routed, to the server namespace; there is no default route.
		{client, "ip", "route", "add", "198.18.0.0/15", "via", serverV4},
		{client, "ip", "-6", "route", "add", "2001:2::/48", "via", serverV6},
	} {
		inNetns(t, c[0], c[1:]...)
	}

	probes := enforcementProbes()
	for _, p := range probes {
		if p.addr.Addr() == netip.MustParseAddr(serverV4) || p.addr.Addr() == netip.MustParseAddr(serverV6) {
			continue
		}
		args := []string{"ip", "addr", "add", netip.PrefixFrom(p.addr.Addr(), p.addr.Addr().BitLen()).String(), "dev", "lo"}
		if p.addr.Addr().Is6() {
			args = append(args, "nodad")
		}
		// The same address may serve several probes.
		_ = exec.Command("ip", append([]string{"netns", "exec", server}, args...)...).Run()
	}
	startServers(t, server, probes)

	// Control: without the ruleset every probe connects, so a drop later is the firewall's.
	// The veth carrier and IPv6 neighbour discovery take a moment to settle: poll briefly.
	var failed []probeResult
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		failed = failed[:0]
		for _, r := range runProbes(client, probes) {
			if r.err != nil {
				failed = append(failed, r)
			}
		}
		return len(failed) == 0, nil
	})
	if err != nil {
		for _, r := range failed {
			t.Errorf("setup broken: %s %s (%s) fails without any firewall: %v", r.p.network, r.p.addr, r.p.why, r.err)
		}
		t.FailNow()
	}

	opts := Options{
		Networks: Networks{
			Pod:     []netip.Prefix{netip.MustParsePrefix("198.18.64.0/20")},
			Service: []netip.Prefix{netip.MustParsePrefix("198.18.96.0/20")},
			Machine: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:2:0:1::/64")},
		},
		Meta: Meta{Version: "test"},
		Resolve: func(h string) ([]netip.Addr, error) {
			if h != "registry.test" {
				return nil, fmt.Errorf("unexpected lookup of %s", h)
			}
			return []netip.Addr{netip.MustParseAddr("198.18.4.4"), netip.MustParseAddr("2001:2:0:4::4")}, nil
		},
	}
	sets, un, err := NFTables(enforcementBaseline(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != 0 {
		t.Fatalf("enforcement baseline should be fully expressible: %v", un)
	}
	var worker *Ruleset
	for _, s := range sets {
		if s.Role == RoleWorker {
			worker = s.Ruleset
		}
	}
	if worker == nil {
		t.Fatal("no worker ruleset")
	}
	var buf bytes.Buffer
	if _, err := worker.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "worker.nft")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	inNetns(t, client, "nft", "-f", path)
	// Loading twice must replace, not duplicate, the table (what a unit restart does).
	inNetns(t, client, "nft", "-f", path)

	for _, r := range runProbes(client, probes) {
		switch {
		case r.p.allowed && r.err != nil:
			t.Errorf("documented %s %s (%s) blocked: %v", r.p.network, r.p.addr, r.p.why, r.err)
		case !r.p.allowed && r.err == nil:
			t.Errorf("undocumented %s %s (%s) connected", r.p.network, r.p.addr, r.p.why)
		}
	}
	if t.Failed() {
		out, _ := exec.Command("ip", "netns", "exec", client, "nft", "list", "ruleset").CombinedOutput()
		t.Logf("client ruleset:\n%s", out)
	}
}

// startServers listens on every probe address: TCP accepts and closes, UDP echoes.
func startServers(t *testing.T, ns string, probes []probe) {
	t.Helper()
	var wg sync.WaitGroup
	var closers []io.Closer
	// One cleanup closes every socket, then waits for the server goroutines to end.
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	})
	for _, p := range probes {
		if p.network == "icmp" {
			continue // the kernel answers echo requests
		}
		l, err := listen(ns, p.network, p.addr.String())
		if err != nil {
			t.Fatalf("listen %s %s in %s: %v", p.network, p.addr, ns, err)
		}
		wg.Add(1)
		switch l := l.(type) {
		case net.Listener:
			closers = append(closers, l)
			go func() {
				defer wg.Done()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		case net.PacketConn:
			closers = append(closers, l)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for {
					n, from, err := l.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = l.WriteTo(buf[:n], from)
				}
			}()
		}
	}
}

type probeResult struct {
	p   probe
	err error
}

// probeTimeout bounds how long a dropped probe waits; probes run in parallel.
const probeTimeout = 700 * time.Millisecond

func runProbes(ns string, probes []probe) []probeResult {
	results := make([]probeResult, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := inNS(ns, func() (struct{}, error) { return struct{}{}, connect(p) })
			results[i] = probeResult{p, err}
		}()
	}
	wg.Wait()
	return results
}

// connect completes a TCP handshake, a UDP exchange answered by the echo server, or an ICMP
// echo exchange.
func connect(p probe) error {
	if p.network == "icmp" {
		return ping(p.addr.Addr())
	}
	c, err := net.DialTimeout(p.network, p.addr.String(), probeTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if p.network == "tcp" {
		return nil
	}
	if err := c.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "ping" {
		return fmt.Errorf("%w: echo returned %q", errNoAnswer, buf[:n])
	}
	return nil
}

var pingSeq atomic.Int32

// ping sends one ICMP echo request from a raw socket and waits for the matching reply. Raw
// sockets see every ICMP packet, so replies are matched on source, identifier and sequence.
func ping(dst netip.Addr) error {
	c, err := icmp.ListenPacket("ip4:icmp", clientV4)
	if err != nil {
		return err
	}
	defer c.Close()
	id, seq := os.Getpid()&0xffff, int(pingSeq.Add(1))
	req, err := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("ping")}}).Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(probeTimeout)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply || from.String() != dst.String() {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return nil
		}
	}
}
