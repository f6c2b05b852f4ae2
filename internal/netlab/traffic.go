package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Per-connection bounds: a lab run must end.
const (
	dialTimeout  = 5 * time.Second
	replyTimeout = 5 * time.Second
	// burstWorkers is how many connections a burst keeps in flight at once.
	burstWorkers = 32
)

// sender is where a traffic entry's packets leave from.
type sender struct {
	ns       string
	resolver netip.Addr
	node     *nodeNet
	pod      *podNet // nil for a node or a host-network workload
}

func (t *Topology) sender(s *Scenario, from string) (sender, error) {
	if n, ok := strings.CutPrefix(from, NodeSource); ok {
		_, i := s.node(n)
		if i < 0 {
			return sender{}, fmt.Errorf("traffic from %q: no such node", from)
		}
		return sender{ns: t.nodes[i].ns, resolver: NodeResolver, node: t.nodes[i]}, nil
	}
	for _, w := range s.Workloads {
		if w.Namespace+"/"+w.Name != from {
			continue
		}
		_, i := s.node(w.Node)
		n := t.nodes[i]
		if w.HostNetwork {
			// A host-network pod shares its node's namespace and resolver.
			return sender{ns: n.ns, resolver: NodeResolver, node: n}, nil
		}
		for _, p := range n.pods {
			if p.Namespace == w.Namespace && p.Name == w.Name {
				return sender{ns: p.ns, resolver: ClusterDNS, node: n, pod: p}, nil
			}
		}
	}
	return sender{}, fmt.Errorf("traffic from %q: no such workload", from)
}

func (t *Topology) externalAddr(host string) (netip.Addr, bool) {
	for _, e := range t.external {
		if strings.EqualFold(e.Host, strings.TrimSuffix(host, ".")) {
			return e.addr, true
		}
	}
	return netip.Addr{}, false
}

// lookup asks resolver for host's A record from the current namespace.
func lookup(resolver netip.Addr, host string) (netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), dns.TypeA)
	c := &dns.Client{Timeout: replyTimeout}
	r, _, err := c.Exchange(m, netip.AddrPortFrom(resolver, 53).String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolving %s at %s: %w", host, resolver, err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ad, ok := netip.AddrFromSlice(a.A); ok {
				return ad.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("resolving %s at %s: no A record (rcode %s)", host, resolver, dns.RcodeToString[r.Rcode])
}

// burstPortBase is the first client port of a burst: each connection of a burst has its own
// port, so that each is a distinct flow whatever the kernel's port reuse.
const burstPortBase = 10000

// oneTCP makes one short TCP exchange from the current namespace, from client port lport
// (0: the kernel's choice).
func oneTCP(dst netip.AddrPort, host string, lport int) error {
	d := net.Dialer{Timeout: dialTimeout}
	if lport > 0 {
		d.LocalAddr = &net.TCPAddr{Port: lport}
	}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(replyTimeout))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("TCP %s: unexpected answer %q", dst, b)
	}
	return nil
}

// oneUDP sends one request from a new socket (a new source port, lport when not 0) and
// waits for its reply.
func oneUDP(dst netip.AddrPort, host string, lport int) error {
	switch dst.Port() {
	case 53:
		_, err := lookup(dst.Addr(), host)
		return err
	}
	var laddr *net.UDPAddr
	if lport > 0 {
		laddr = &net.UDPAddr{Port: lport}
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(replyTimeout))
	req := []byte("netlab " + host)
	if dst.Port() == 123 {
		req = ntpRequest(time.Now())
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if dst.Port() == 123 {
		return checkNTPReply(req, buf[:n])
	}
	if !bytes.Equal(buf[:n], req) {
		return fmt.Errorf("UDP %s: echo differs", dst)
	}
	return nil
}

// resolve gives the address a traffic entry connects to: through the sender's resolver
// (so that the agent sees the lookup and DnsName is real), or the host's address with
// noLookup.
func (t *Topology) resolve(snd sender, tr Traffic) (netip.Addr, error) {
	if tr.NoLookup {
		a, ok := t.externalAddr(tr.To)
		if !ok {
			return a, fmt.Errorf("no external host %s", tr.To)
		}
		return a, nil
	}
	var a netip.Addr
	err := inNetns(snd.ns, func() error {
		var err error
		a, err = lookup(snd.resolver, tr.To)
		return err
	})
	return a, err
}

// runTraffic makes a traffic entry's connections; burst entries keep burstWorkers in flight.
// It returns how many connections succeeded; any failure is an error.
func (t *Topology) runTraffic(ctx context.Context, s *Scenario, tr Traffic) (int, error) {
	snd, err := t.sender(s, tr.From)
	if err != nil {
		return 0, err
	}
	addr, err := t.resolve(snd, tr)
	if err != nil {
		return 0, fmt.Errorf("traffic %s → %s: %w", tr.From, tr.To, err)
	}
	dst := netip.AddrPortFrom(addr, uint16(tr.Port))
	one := oneTCP
	if tr.Protocol == "UDP" {
		one = oneUDP
	}
	workers := 1
	if tr.Burst {
		workers = min(burstWorkers, tr.Connections)
	}
	var (
		mu   sync.Mutex
		done int
		errs []error
		next = make(chan int)
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := inNetns(snd.ns, func() error {
				for lport := range next {
					err := one(dst, tr.To, lport)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						done++
					}
					mu.Unlock()
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range tr.Connections {
		lport := 0
		if tr.Burst {
			lport = burstPortBase + i
		}
		select {
		case next <- lport:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return done, err
	}
	if len(errs) > 0 {
		return done, fmt.Errorf("traffic %s → %s %s/%d: %d of %d connections failed, first: %w", tr.From, tr.To, tr.Protocol, tr.Port, len(errs), tr.Connections, errs[0])
	}
	return done, nil
}

// longLived is a TCP connection opened before the window.
type longLived struct {
	tr   Traffic
	conn net.Conn
	buf  []byte
}

// openLongLived connects and makes one exchange: the SYN and that exchange are flushed by
// the agent before the window starts.
func (t *Topology) openLongLived(s *Scenario, tr Traffic) (*longLived, error) {
	snd, err := t.sender(s, tr.From)
	if err != nil {
		return nil, err
	}
	addr, err := t.resolve(snd, tr)
	if err != nil {
		return nil, err
	}
	ll := &longLived{tr: tr, buf: make([]byte, 4096)}
	err = inNetns(snd.ns, func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(tr.Port)).String(), dialTimeout)
		if err != nil {
			return err
		}
		ll.conn = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("long-lived %s → %s: %w", tr.From, tr.To, err)
	}
	return ll, ll.exchange()
}

func (l *longLived) exchange() error {
	_ = l.conn.SetDeadline(time.Now().Add(replyTimeout))
	if _, err := fmt.Fprintf(l.conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", l.tr.To); err != nil {
		return fmt.Errorf("long-lived %s → %s: %w", l.tr.From, l.tr.To, err)
	}
	n, err := l.conn.Read(l.buf)
	if err != nil {
		return fmt.Errorf("long-lived %s → %s: %w", l.tr.From, l.tr.To, err)
	}
	if !bytes.HasPrefix(l.buf[:n], []byte("HTTP/1.1 200")) {
		return errors.New("long-lived: unexpected answer")
	}
	return nil
}

func (l *longLived) close() {
	if l.conn != nil {
		_ = l.conn.Close()
	}
}

// sendCanary sends one datagram from a namespace to the internet's discard service: a
// record that each agent reports after the window, for the ingestion barrier.
func sendCanary(ns string) error {
	return inNetns(ns, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(canaryAddr, canaryPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("netlab canary"))
		return err
	})
}
