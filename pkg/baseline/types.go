// Package baseline keeps the documented egress matrix: human-edited YAML files under
// baseline/, versioned by OpenShift minor with platform and topology variants, strictly
// validated, diffed against an observed matrix and updated in place.
package baseline

import "net/netip"

// Entry is one documented egress connection. YAML keys are the file format contract.
type Entry struct {
	// Component is the OpenShift component (Jira component) that owns the connection.
	Component   string      `yaml:"component" json:"component"`
	Source      Source      `yaml:"source" json:"source"`
	Destination Destination `yaml:"destination" json:"destination"`
	Protocol    string      `yaml:"protocol" json:"protocol"` // TCP, UDP, SCTP, ICMP
	// Port is a single port ("443") or an inclusive range ("30000-32767"); empty for ICMP.
	Port string `yaml:"port,omitempty" json:"port,omitempty"`
	// Optional entries are allowed but not expected in every run: never reported as unobserved.
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
	// Observed is false for entries documented (e.g. from the product docs) but not yet
	// confirmed by a cluster run.
	Observed bool   `yaml:"observed" json:"observed"`
	Reason   string `yaml:"reason" json:"reason"`

	// Where the entry was read from, for error messages and reports.
	File  string `yaml:"-" json:"file,omitempty"`
	Line  int    `yaml:"-" json:"line,omitempty"`
	Index int    `yaml:"-" json:"index,omitempty"` // 0-based position in its file
}

// Source names who makes the connection: a pod workload (namespace, workload, kind; glob
// patterns allowed) or a node role (control-plane, worker, node, or "*"), never both.
type Source struct {
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Workload  string `yaml:"workload,omitempty" json:"workload,omitempty"`
	Kind      string `yaml:"kind,omitempty" json:"kind,omitempty"`
	NodeRole  string `yaml:"nodeRole,omitempty" json:"nodeRole,omitempty"`
}

// Destination names where the connection goes: exactly one of a hostname or wildcard
// ("registry.redhat.io", "*.quay.io"), a CIDR, or a NetObserv subnet label ("EXT:aws-s3").
type Destination struct {
	Host        string `yaml:"host,omitempty" json:"host,omitempty"`
	CIDR        string `yaml:"cidr,omitempty" json:"cidr,omitempty"`
	SubnetLabel string `yaml:"subnetLabel,omitempty" json:"subnetLabel,omitempty"`
}

// PortRange is an inclusive port range; a single port has Min == Max. ICMP has {0, 0}.
type PortRange struct{ Min, Max int }

// Baseline is the set of files picked for one cluster, loaded and validated.
type Baseline struct {
	Files   []string
	Entries []Entry
	// Omitted are the entries Resolve left out: they document a connection the cluster
	// cannot make ({bmcNetwork} none), or one an earlier entry documents once resolved.
	Omitted []Entry
}

// Prefix returns the destination CIDR as a prefix; ok is false when the destination is not a CIDR.
func (d Destination) Prefix() (p netip.Prefix, ok bool) {
	if d.CIDR == "" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(d.CIDR)
	return p.Masked(), err == nil
}
