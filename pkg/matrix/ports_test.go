package matrix

import (
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

func TestPortPolicy(t *testing.T) {
	p := PortPolicy{Extra: map[int]bool{6443: true, 40000: true}}
	for _, c := range []struct {
		port                       int
		server, ephemeral, dynamic bool
	}{
		{0, false, false, false}, {22, true, false, false}, {1023, true, false, false}, {1024, false, true, false},
		{6443, true, false, false}, {32767, false, true, false}, {32768, false, true, true}, {40000, true, false, false},
		{flow.EphemeralPort, false, true, true}, {50000, false, true, true},
	} {
		if p.IsServerPort(c.port) != c.server || p.IsEphemeral(c.port) != c.ephemeral || p.IsDynamic(c.port) != c.dynamic {
			t.Errorf("port %d: server %v ephemeral %v dynamic %v, want %v %v %v", c.port,
				p.IsServerPort(c.port), p.IsEphemeral(c.port), p.IsDynamic(c.port), c.server, c.ephemeral, c.dynamic)
		}
	}
}
