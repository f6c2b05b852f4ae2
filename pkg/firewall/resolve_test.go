package firewall

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestResolver runs Resolver against a real DNS server on loopback (miekg/dns) so no test
// ever queries the machine's resolvers.
func TestResolver(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc("registry.test.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			var rr string
			switch question.Qtype {
			case dns.TypeA:
				rr = "registry.test. 60 IN A 198.18.4.4"
			case dns.TypeAAAA:
				rr = "registry.test. 60 IN AAAA 2001:2:0:4::4"
			default:
				continue
			}
			r, err := dns.NewRR(rr)
			if err != nil {
				t.Error(err)
				continue
			}
			m.Answer = append(m.Answer, r)
		}
		_ = w.WriteMsg(m)
	})
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	resolve := Resolver(r, 2*time.Second)
	got, err := resolve("registry.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("198.18.4.4"), netip.MustParseAddr("2001:2:0:4::4")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := resolve("missing.test"); err == nil || !strings.Contains(err.Error(), "missing.test") {
		t.Fatalf("want lookup error naming the host, got %v", err)
	}
}

func TestParseNetworks(t *testing.T) {
	n, err := ParseNetworks([]string{"10.128.0.0/14"}, []string{"172.30.0.0/16"}, []string{"10.0.0.0/16", "fd00::/64"})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.All(); len(got) != 4 || got[0] != netip.MustParsePrefix("10.0.0.0/16") {
		t.Fatalf("All() = %v", got)
	}
	n.Internal = OVNInternalDefaults()
	if got := n.All(); len(got) != 10 || !slices.Contains(got, netip.MustParsePrefix("169.254.0.0/17")) {
		t.Fatalf("All() with internal ranges = %v", got)
	}
	if _, err := ParseNetworks([]string{"10.128.0.0/14"}, []string{"bad"}, []string{"10.0.0.0/16"}); err == nil || !strings.Contains(err.Error(), `service network: cidr "bad"`) {
		t.Fatalf("want error naming the service value, got %v", err)
	}
	// Host bits are refused as baseline files refuse them, not masked.
	if _, err := ParseNetworks([]string{"10.128.0.1/14"}, []string{"172.30.0.0/16"}, []string{"10.0.0.0/16"}); err == nil || !strings.Contains(err.Error(), "fix: write 10.128.0.0/14") {
		t.Fatalf("want host bits refused with the block to write, got %v", err)
	}
	if _, err := ParseNetworks(nil, []string{"172.30.0.0/16"}, []string{"10.0.0.0/16"}); err == nil || !strings.Contains(err.Error(), "--pod-cidr") {
		t.Fatalf("want missing pod network error, got %v", err)
	}
}
