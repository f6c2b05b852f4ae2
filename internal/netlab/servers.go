package netlab

import (
	"encoding/binary"
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

// Answer is one answer of the lab DNS: Name resolved to Address at Time.
type Answer struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
	Time    time.Time  `json:"time"`
	// Server is the address that answered: the cluster DNS, the nodes' resolver, or an
	// external resolver of the scenario.
	Server string `json:"server"`
}

// answerTTL is the TTL of the lab DNS answers; a resolution names its address for that long.
const answerTTL = 300

// servers are the lab's listeners: the external hosts' TCP and UDP servers, and the DNS.
type servers struct {
	mu      sync.Mutex
	answers []Answer
	hosts   map[string]netip.Addr // fqdn → address

	closers []io.Closer
	dns     []*dns.Server
	wg      sync.WaitGroup
}

func newServers(t *Topology) *servers {
	s := &servers{hosts: map[string]netip.Addr{}}
	for _, e := range t.external {
		s.hosts[dns.Fqdn(strings.ToLower(e.Host))] = e.addr
	}
	return s
}

// Answers returns the DNS answers given so far.
func (s *servers) Answers() []Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Answer(nil), s.answers...)
}

// start opens every listener inside its namespace.
func (s *servers) start(t *Topology) error {
	// The cluster DNS and the nodes' resolver stand in the router namespace: in-cluster
	// addresses (Services, Machines), so lookups are not egress.
	if err := inNetns(t.router, func() error {
		for _, a := range []netip.Addr{ClusterDNS, NodeResolver} {
			if err := s.serveDNS(netip.AddrPortFrom(a, 53)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return inNetns(t.internet, func() error {
		// The canary: a discard service that post-window packets go to.
		if err := s.serveUDP(netip.AddrPortFrom(canaryAddr, canaryPort), func([]byte) []byte { return nil }); err != nil {
			return err
		}
		for _, e := range t.external {
			for _, p := range e.TCP {
				if err := s.serveTCP(netip.AddrPortFrom(e.addr, uint16(p)), e.Host); err != nil {
					return err
				}
			}
			for _, p := range e.UDP {
				ap := netip.AddrPortFrom(e.addr, uint16(p))
				var err error
				switch p {
				case 53:
					err = s.serveDNS(ap)
				case 123:
					err = s.serveUDP(ap, ntpReply)
				default:
					err = s.serveUDP(ap, func(b []byte) []byte { return b })
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *servers) serveTCP(ap netip.AddrPort, host string) error {
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("listening on %s (%s): %w", ap, host, err)
	}
	s.closers = append(s.closers, l)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				// A request that asks to close is answered and the server closes first, so
				// the client keeps no TIME_WAIT; others (long-lived) are answered in a loop.
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nServer: netlab %s\r\nContent-Length: 2\r\n\r\nok", host)
					if strings.Contains(string(buf[:n]), "Connection: close") {
						return
					}
				}
			}()
		}
	}()
	return nil
}

// serveUDP answers each datagram with reply(datagram); nil sends nothing.
func (s *servers) serveUDP(ap netip.AddrPort, reply func([]byte) []byte) error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("listening on udp %s: %w", ap, err)
	}
	s.closers = append(s.closers, c)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if out := reply(append([]byte(nil), buf[:n]...)); out != nil {
				_, _ = c.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	return nil
}

// ntpEpoch is the NTP era 0 origin.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

func ntpTime(t time.Time) uint64 {
	d := t.Sub(ntpEpoch)
	sec := uint64(d / time.Second)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// ntpReply is an NTPv4 server answer (RFC 5905) to a client request, or nil for anything
// else: stratum 2, the request's transmit time as origin, receive and transmit now.
func ntpReply(req []byte) []byte {
	if len(req) < 48 || req[0]&0x7 != 3 {
		return nil
	}
	now := time.Now()
	out := make([]byte, 48)
	out[0] = req[0]&0x38 | 4                       // LI 0, the client's version, mode 4 (server)
	out[1] = 2                                     // stratum
	out[2] = req[2]                                // poll
	out[3] = 0xec                                  // precision 2^-20
	binary.BigEndian.PutUint32(out[4:], 1<<16/100) // root delay 10 ms
	binary.BigEndian.PutUint32(out[8:], 1<<16/100) // root dispersion 10 ms
	copy(out[12:16], []byte{198, 18, 255, 123})    // reference ID: the upstream's address
	binary.BigEndian.PutUint64(out[16:], ntpTime(now.Add(-time.Minute)))
	copy(out[24:32], req[40:48]) // origin = the client's transmit timestamp
	binary.BigEndian.PutUint64(out[32:], ntpTime(now))
	binary.BigEndian.PutUint64(out[40:], ntpTime(time.Now()))
	return out
}

// ntpRequest is a client request (mode 3, version 4) stamped with t.
func ntpRequest(t time.Time) []byte {
	b := make([]byte, 48)
	b[0] = 4<<3 | 3
	binary.BigEndian.PutUint64(b[40:], ntpTime(t))
	return b
}

// checkNTPReply verifies that reply answers req.
func checkNTPReply(req, reply []byte) error {
	if len(reply) < 48 {
		return fmt.Errorf("NTP reply of %d bytes", len(reply))
	}
	if reply[0]&0x7 != 4 {
		return fmt.Errorf("NTP reply mode %d, want 4", reply[0]&0x7)
	}
	if string(reply[24:32]) != string(req[40:48]) {
		return errors.New("NTP reply origin timestamp is not the request's")
	}
	return nil
}

func (s *servers) serveDNS(ap netip.AddrPort) error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("DNS on %s: %w", ap, err)
	}
	server := ap.Addr().String()
	srv := &dns.Server{PacketConn: c, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			a, ok := s.hosts[strings.ToLower(q.Name)]
			if !ok {
				continue
			}
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: answerTTL}, A: a.AsSlice()})
				s.mu.Lock()
				s.answers = append(s.answers, Answer{Name: strings.TrimSuffix(strings.ToLower(q.Name), "."), Address: a, Time: time.Now().UTC(), Server: server})
				s.mu.Unlock()
			}
		}
		if len(m.Answer) == 0 && len(r.Question) > 0 {
			if _, ok := s.hosts[strings.ToLower(r.Question[0].Name)]; !ok {
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	s.dns = append(s.dns, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.ActivateAndServe()
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("DNS on %s did not start", ap)
	}
	return nil
}

// stop closes every listener and waits for the servers to end.
func (s *servers) stop() {
	for _, d := range s.dns {
		_ = d.Shutdown()
	}
	for _, c := range s.closers {
		_ = c.Close()
	}
	s.wg.Wait()
}
