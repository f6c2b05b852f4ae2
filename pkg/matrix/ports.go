package matrix

import "github.com/openshift/egress-tests-ext/pkg/flow"

// DynamicPortMin is where the dynamic (client) port ranges start: Linux picks client ports
// from 32768-60999 by default, IANA reserves 49152-65535. Below it a port may be a
// registered server port; at or above it, it is a client's unless configured.
const DynamicPortMin = 32768

// PortPolicy is the one rule on ports every source and the builder share. Server ports are
// the well-known ones (below 1024) and Extra (registered ports a cluster is known to serve
// on: 6443, 8443, ...). Dynamic ports are the client range from DynamicPortMin, less Extra.
// Registered ports in between are neither: the builder decides those records by the other
// side's port.
type PortPolicy struct {
	Extra map[int]bool
}

// IsServerPort reports whether port is well known or configured.
func (p PortPolicy) IsServerPort(port int) bool {
	return (port > 0 && port < 1024) || p.Extra[port]
}

// IsEphemeral reports whether port cannot be a server port by this policy: it is above
// the well-known range and not configured, or it stands for a folded client port.
func (p PortPolicy) IsEphemeral(port int) bool {
	return port == flow.EphemeralPort || (port >= 1024 && !p.Extra[port])
}

// IsDynamic reports whether port is in the client range (or stands for a folded client
// port): a source may fold it away.
func (p PortPolicy) IsDynamic(port int) bool {
	return port == flow.EphemeralPort || (port >= DynamicPortMin && !p.Extra[port])
}
