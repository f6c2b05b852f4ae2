package baseline

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// Placeholders name the parts of a destination that depend on the cluster: the documented
// `*.apps.<cluster_name>.<base_domain>` routes, the external API load balancer, a cloud
// region, the bare-metal BMC network. A file writes them as {name}; Resolve replaces them
// with the cluster's Values before a diff or a firewall is made from the baseline.
const (
	// AppsDomain is the cluster's ingress domain, apps.<cluster_name>.<base_domain>
	// (Ingress config "cluster" spec.domain): host "*.{appsDomain}".
	AppsDomain = "appsDomain"
	// APIHost is the external API host, api.<cluster_name>.<base_domain> (the host of
	// Infrastructure "cluster" status.apiServerURL): host "{apiHost}".
	APIHost = "apiHost"
	// Region is the cloud region (Infrastructure status.platformStatus.<cloud>.region):
	// host "ec2.{region}.amazonaws.com".
	Region = "region"
	// BMCNetwork is where the bare-metal hosts' BMCs are: cidr "{bmcNetwork}". Its value is
	// one or more CIDRs, comma-separated (the entry is repeated for each), or "none" on a
	// cluster without BMCs (the entry documents nothing there and is left out).
	BMCNetwork = "bmcNetwork"
	// PlatformAPI is the host of the virtualization platform's API the cluster drives:
	// vCenter, Prism Central, OpenStack's identity endpoint: host "{platformAPI}". A value that
	// is an IP address turns the destination into that address's CIDR.
	PlatformAPI = "platformAPI"
)

// NoBMC is the value of {bmcNetwork} for a cluster without BMCs.
const NoBMC = "none"

// placeholder says where a placeholder may be written, what stands in for it while a file is
// validated, how the published table shows it unresolved, and what resolves it.
type placeholder struct {
	inHost, inCIDR bool
	sample         string // a valid value, for validation
	display        string // unresolved, in the published table
	resolvedBy     string
}

var placeholders = map[string]placeholder{
	AppsDomain: {inHost: true, sample: "apps.cluster.example.com", display: "apps.<cluster_name>.<base_domain>",
		resolvedBy: "--cluster-domain DOMAIN (the part after api.; appsDomain is apps.DOMAIN), or the cluster's Ingress config \"cluster\" spec.domain (cluster.Facts.AppsDomain)"},
	APIHost: {inHost: true, sample: "api.cluster.example.com", display: "api.<cluster_name>.<base_domain>",
		resolvedBy: "--cluster-domain DOMAIN (apiHost is api.DOMAIN), or the host of the cluster's Infrastructure \"cluster\" status.apiServerURL (cluster.Facts.APIHost)"},
	Region: {inHost: true, sample: "us-east-1", display: "<region>",
		resolvedBy: "--region REGION, or the cluster's Infrastructure \"cluster\" status.platformStatus.<platform>.region (cluster.Facts.Region)"},
	BMCNetwork: {inCIDR: true, sample: "192.0.2.0/24", display: "<bmc_network>",
		resolvedBy: "--bmc-network CIDR[,CIDR...] or none (the network of the BareMetalHosts' spec.bmc.address), or on the cluster EGRESS_BMC_NETWORK, else the BareMetalHosts' BMC addresses (cluster.Facts.BMCNetworks)"},
	PlatformAPI: {inHost: true, sample: "vcenter.example.com", display: "<platform_api_host>",
		resolvedBy: "--platform-api HOST, or on the cluster EGRESS_PLATFORM_API, else Infrastructure \"cluster\" spec.platformSpec (vSphere vcenters[].server, Nutanix prismCentral.address; cluster.Facts.PlatformAPI)"},
}

// Placeholders lists the known placeholder names, sorted.
func Placeholders() []string {
	out := make([]string, 0, len(placeholders))
	for k := range placeholders {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func placeholderList() string {
	var out []string
	for _, n := range Placeholders() {
		out = append(out, "{"+n+"}")
	}
	return strings.Join(out, ", ")
}

// Values are the cluster's values of the placeholders; an empty field is unknown.
type Values struct {
	AppsDomain  string `json:"appsDomain,omitempty"`
	APIHost     string `json:"apiHost,omitempty"`
	Region      string `json:"region,omitempty"`
	BMCNetwork  string `json:"bmcNetwork,omitempty"`
	PlatformAPI string `json:"platformAPI,omitempty"`
}

// ClusterDomainValues returns the values that follow from the cluster's domain, the part of
// the API host after "api." (<cluster_name>.<base_domain>).
func ClusterDomainValues(domain string) (Values, error) {
	d := normalizeHost(strings.TrimSpace(domain))
	if strings.HasPrefix(d, "api.") || strings.HasPrefix(d, "apps.") {
		return Values{}, fmt.Errorf("cluster domain %q starts with api. or apps.; fix: give the part after api., e.g. mycluster.example.com", domain)
	}
	if msg, _ := checkHost(d); msg != "" || !strings.Contains(d, ".") || strings.ContainsAny(d, "*{}") {
		return Values{}, fmt.Errorf("cluster domain %q is not a domain name; fix: give <cluster_name>.<base_domain>, e.g. mycluster.example.com", domain)
	}
	return Values{AppsDomain: "apps." + d, APIHost: "api." + d}, nil
}

// Merge returns v with the fields of o that v leaves empty.
func (v Values) Merge(o Values) Values {
	if v.AppsDomain == "" {
		v.AppsDomain = o.AppsDomain
	}
	if v.APIHost == "" {
		v.APIHost = o.APIHost
	}
	if v.Region == "" {
		v.Region = o.Region
	}
	if v.BMCNetwork == "" {
		v.BMCNetwork = o.BMCNetwork
	}
	if v.PlatformAPI == "" {
		v.PlatformAPI = o.PlatformAPI
	}
	return v
}

func (v Values) get(name string) string {
	switch name {
	case AppsDomain:
		return v.AppsDomain
	case APIHost:
		return v.APIHost
	case Region:
		return v.Region
	case BMCNetwork:
		return v.BMCNetwork
	case PlatformAPI:
		return v.PlatformAPI
	}
	return ""
}

func isAddr(s string) bool { _, err := netip.ParseAddr(s); return err == nil }

// bmcNetworks splits the value of {bmcNetwork}; none is an empty, non-nil list.
func bmcNetworks(v string) []string {
	if v == NoBMC {
		return []string{}
	}
	var out []string
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// check validates the values themselves, so that a bad flag is reported as such rather than
// as a broken entry.
func (v Values) check() error {
	var errs []error
	for _, h := range []struct{ name, val string }{{AppsDomain, v.AppsDomain}, {APIHost, v.APIHost}} {
		if h.val == "" {
			continue
		}
		if msg, _ := checkHost(h.val); msg != "" || strings.ContainsAny(h.val, "*{}") {
			errs = append(errs, fmt.Errorf("{%s} value %q is not a hostname; fix: %s", h.name, h.val, placeholders[h.name].resolvedBy))
		}
	}
	if v.Region != "" && !regionRE.MatchString(v.Region) {
		errs = append(errs, fmt.Errorf("{region} value %q is not a region name (lower-case letters, digits and hyphens, e.g. us-east-1); fix: %s", v.Region, placeholders[Region].resolvedBy))
	}
	if v.BMCNetwork != "" {
		nets := bmcNetworks(v.BMCNetwork)
		if v.BMCNetwork != NoBMC && len(nets) == 0 {
			errs = append(errs, fmt.Errorf("{bmcNetwork} value %q holds no CIDR; fix: %s", v.BMCNetwork, placeholders[BMCNetwork].resolvedBy))
		}
		for _, c := range nets {
			if msg, fix := checkCIDR(c); msg != "" {
				errs = append(errs, fmt.Errorf("{bmcNetwork} value: %s; fix: %s", msg, fix))
			}
		}
	}
	if v.PlatformAPI != "" {
		if _, err := netip.ParseAddr(v.PlatformAPI); err != nil {
			if msg, _ := checkHost(v.PlatformAPI); msg != "" || strings.ContainsAny(v.PlatformAPI, "*{}") {
				errs = append(errs, fmt.Errorf("{platformAPI} value %q is neither a hostname nor an IP address; fix: %s", v.PlatformAPI, placeholders[PlatformAPI].resolvedBy))
			}
		}
	}
	return errors.Join(errs...)
}

var (
	regionRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	placeholderRE = regexp.MustCompile(`\{[^{}]*\}?`)
)

// HasPlaceholder reports whether a destination value holds a {placeholder}.
func HasPlaceholder(s string) bool { return strings.ContainsAny(s, "{}") }

// substitute replaces every placeholder of s by value(name); ok is false when value returns "".
// Unknown names and placeholders not allowed in the field are reported in bad.
func substitute(s string, inHost bool, value func(name string) string) (out string, missing, bad []string) {
	out = placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.TrimSuffix(strings.TrimPrefix(m, "{"), "}")
		p, known := placeholders[name]
		switch {
		case !strings.HasSuffix(m, "}") || !known:
			bad = append(bad, fmt.Sprintf("unknown placeholder %q", m))
			return m
		case inHost && !p.inHost, !inHost && !p.inCIDR:
			field := "cidr"
			if inHost {
				field = "host"
			}
			bad = append(bad, fmt.Sprintf("placeholder %s is not allowed in destination.%s", m, field))
			return m
		}
		v := value(name)
		if v == "" {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if strings.ContainsAny(out, "{}") && len(bad) == 0 && len(missing) == 0 {
		bad = append(bad, "unbalanced braces")
	}
	return out, missing, bad
}

func sampleValue(name string) string { return placeholders[name].sample }

// checkPlaceholders validates a host or CIDR with placeholders: every placeholder known and
// allowed there, and the value valid once sample values stand in. It returns the value with
// samples substituted, for the usual checks.
func checkPlaceholders(field, s string) (sample, msg, fix string) {
	out, _, bad := substitute(s, field == "host", sampleValue)
	if len(bad) > 0 {
		return "", fmt.Sprintf("%s %q: %s", field, s, strings.Join(bad, "; ")),
			"use one of the known placeholders " + placeholderList() + " (hosts: {appsDomain}, {apiHost}, {region}, {platformAPI}; cidr: {bmcNetwork} alone)"
	}
	if field == "cidr" && s != "{"+BMCNetwork+"}" {
		return "", fmt.Sprintf("cidr %q: a placeholder in a CIDR stands alone", s), "write cidr: \"{bmcNetwork}\""
	}
	return out, "", ""
}

// Resolve returns a copy of b with every placeholder replaced by its value. An entry whose
// placeholder has no value is an error naming its file, line and entry and what resolves it:
// a baseline with placeholders must not be diffed or turned into a firewall. An entry with
// cidr "{bmcNetwork}" is repeated for each BMC network, and left out when the value is none;
// an entry that resolves to the same connection as an earlier one is left out too. The
// entries left out are listed in Omitted.
func Resolve(b *Baseline, v Values) (*Baseline, error) {
	if b == nil {
		return nil, nil
	}
	if err := v.check(); err != nil {
		return nil, err
	}
	out := &Baseline{Files: b.Files, Entries: make([]Entry, 0, len(b.Entries))}
	var errs []error
	for _, e := range b.Entries {
		if e.Destination.CIDR == "{"+BMCNetwork+"}" && v.BMCNetwork != "" {
			nets := bmcNetworks(v.BMCNetwork)
			if len(nets) == 0 {
				out.Omitted = append(out.Omitted, e)
			}
			for _, c := range nets {
				x := e
				x.Destination.CIDR = netip.MustParsePrefix(c).Masked().String()
				out.Entries = append(out.Entries, x)
			}
			continue
		}
		if e.Destination.Host == "{"+PlatformAPI+"}" {
			if a, err := netip.ParseAddr(v.PlatformAPI); err == nil {
				a = a.Unmap()
				e.Destination.Host, e.Destination.CIDR = "", netip.PrefixFrom(a, a.BitLen()).String()
				out.Entries = append(out.Entries, e)
				continue
			}
		}
		for _, f := range []struct {
			field string
			val   *string
		}{{"host", &e.Destination.Host}, {"cidr", &e.Destination.CIDR}} {
			if !HasPlaceholder(*f.val) {
				continue
			}
			res, missing, bad := substitute(*f.val, f.field == "host", v.get)
			switch {
			case len(bad) > 0:
				errs = append(errs, &Error{File: e.File, Line: e.Line, Index: e.Index,
					Msg: fmt.Sprintf("destination.%s %q: %s", f.field, *f.val, strings.Join(bad, "; ")),
					Fix: "use one of the known placeholders " + placeholderList()})
			case len(missing) > 0:
				var by []string
				for _, m := range missing {
					by = append(by, "{"+m+"}: "+placeholders[m].resolvedBy)
				}
				errs = append(errs, &Error{File: e.File, Line: e.Line, Index: e.Index,
					Msg: fmt.Sprintf("destination.%s %q has unresolved placeholders", f.field, *f.val),
					Fix: strings.Join(by, "; ")})
			case f.field == "host" && strings.Contains(*f.val, "{"+PlatformAPI+"}") && isAddr(v.PlatformAPI):
				errs = append(errs, &Error{File: e.File, Line: e.Line, Index: e.Index,
					Msg: fmt.Sprintf("destination.host %q resolves to %q: {platformAPI} is an IP address here, which only the whole host can be", *f.val, res),
					Fix: "write host \"{platformAPI}\" alone, or give --platform-api a hostname"})
			default:
				if f.field == "host" {
					if msg, _ := checkHost(res); msg != "" {
						errs = append(errs, &Error{File: e.File, Line: e.Line, Index: e.Index,
							Msg: fmt.Sprintf("destination.host %q resolves to %q: %s", *f.val, res, msg), Fix: "correct the value of the placeholder, or write the placeholder alone as the host"})
					}
				}
				*f.val = res
			}
		}
		if e.Destination.CIDR != "" && !HasPlaceholder(e.Destination.CIDR) {
			if p, err := netip.ParsePrefix(e.Destination.CIDR); err == nil {
				e.Destination.CIDR = p.Masked().String()
			}
		}
		out.Entries = append(out.Entries, e)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errors.Join(errs...)
	}
	out.Entries, out.Omitted = mergeResolved(out.Entries, out.Omitted)
	if err := errors.Join(checkDuplicates(out.Entries)...); err != nil {
		return nil, fmt.Errorf("baseline: resolved placeholders make entries overlap: %w", err)
	}
	return out, nil
}

// mergeResolved keeps the first of entries that a placeholder made identical (same source,
// destination, protocol and port: the docs' tagging.<aws_region> is tagging.us-east-1 in
// us-east-1) and moves the others to omitted. Entries written identical are refused by Load.
func mergeResolved(entries, omitted []Entry) ([]Entry, []Entry) {
	type key struct {
		src            Source
		dst            Destination
		protocol, port string
	}
	seen := map[key]bool{}
	kept := entries[:0]
	for _, e := range entries {
		k := key{e.Source, e.Destination, e.Protocol, e.Port}
		if seen[k] {
			omitted = append(omitted, e)
			continue
		}
		seen[k] = true
		kept = append(kept, e)
	}
	return kept, omitted
}

// Display returns a copy of b for the published table: placeholders with a value are
// replaced by it, the others by the documentation's spelling (*.apps.<cluster_name>.<base_domain>).
// The result is for reading only: never diff it or make a firewall of it.
func Display(b *Baseline, v Values) *Baseline {
	if b == nil {
		return nil
	}
	out := &Baseline{Files: b.Files, Entries: append([]Entry(nil), b.Entries...)}
	val := func(name string) string {
		if s := v.get(name); s != "" {
			return s
		}
		return placeholders[name].display
	}
	for i := range out.Entries {
		d := &out.Entries[i].Destination
		if HasPlaceholder(d.Host) {
			d.Host, _, _ = substitute(d.Host, true, val)
		}
		if HasPlaceholder(d.CIDR) {
			d.CIDR, _, _ = substitute(d.CIDR, false, val)
		}
	}
	return out
}

// Unresolved reports the entries of b that still hold placeholders, for consumers (firewall
// rendering) that need real values.
func Unresolved(b *Baseline) error {
	if b == nil {
		return nil
	}
	var errs []error
	for _, e := range b.Entries {
		if HasPlaceholder(e.Destination.Host) || HasPlaceholder(e.Destination.CIDR) {
			errs = append(errs, &Error{File: e.File, Line: e.Line, Index: e.Index,
				Msg: fmt.Sprintf("destination %s has unresolved placeholders", e.Destination),
				Fix: "resolve the baseline first (baseline.Resolve with the cluster's values: --cluster-domain, --region, --bmc-network, --platform-api)"})
		}
	}
	return errors.Join(errs...)
}
