package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The JSON value types below accept every spelling NetObserv versions (and tools that copy
// their records: jq, logcli, the console plugin) have used for a field: numbers as JSON
// numbers or strings, Flags as a bitfield or a list of names, IfDirections as numbers or
// strings. They never fail on null (a missing value).

// jStr is a string field; a number or bool is kept as its JSON text.
type jStr string

func (s *jStr) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0 || isNull(b):
		*s = ""
	case b[0] == '"':
		if bytes.IndexByte(b, '\\') < 0 {
			*s = jStr(b[1 : len(b)-1])
			return nil
		}
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = jStr(v)
	case b[0] == '{' || b[0] == '[':
		return fmt.Errorf("got %s, want a string", kind(b))
	default:
		*s = jStr(b)
	}
	return nil
}

// jInt is an integer field: a JSON number (integral) or a string holding one.
type jInt int64

func (n *jInt) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*n = 0
		return nil
	}
	if b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		v = strings.TrimSpace(v)
		if v == "" {
			*n = 0
			return nil
		}
		b = []byte(v)
	} else if b[0] == '{' || b[0] == '[' || b[0] == 't' || b[0] == 'f' {
		return fmt.Errorf("got %s, want an integer", kind(b))
	}
	v, err := parseInteger(string(b))
	if err != nil {
		return err
	}
	*n = jInt(v)
	return nil
}

func parseInteger(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	// Tools that round-trip through float64 (jq, JavaScript) may write 1.7e12 or 6.0.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return int64(f), nil
}

// jBool accepts true/false, "true"/"false" and 1/0.
type jBool bool

func (v *jBool) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		*v = true
	case "false", "0", "", "null":
		*v = false
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}

// jList is a list of strings; numbers are kept as their text, a single value is a list of one.
type jList []string

func (l *jList) UnmarshalJSON(b []byte) error {
	*l = (*l)[:0]
	if isNull(b) {
		return nil
	}
	if b[0] != '[' {
		var s jStr
		if err := s.UnmarshalJSON(b); err != nil {
			return err
		}
		*l = append(*l, string(s))
		return nil
	}
	if l.fastList(b) {
		return nil
	}
	*l = (*l)[:0]
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for i, e := range raw {
		var s jStr
		if err := s.UnmarshalJSON(e); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		*l = append(*l, string(s))
	}
	return nil
}

// flagNames maps NetObserv's flag names (Flags as a list, 1.8+) to its bitfield encoding.
var flagNames = map[string]uint32{
	"FIN": FlagFIN, "SYN": FlagSYN, "RST": FlagRST, "PSH": FlagPSH, "ACK": FlagACK,
	"URG": FlagURG, "ECE": FlagECE, "CWR": FlagCWR,
	"SYN_ACK": FlagSYNACK, "FIN_ACK": FlagFINACK, "RST_ACK": FlagRSTACK,
}

// FlagsFromNames ORs NetObserv flag names into the bitfield; unknown names are ignored
// (a newer agent may add flags that do not change how we read the record).
func FlagsFromNames(names ...string) uint32 {
	var f uint32
	for _, n := range names {
		f |= flagNames[strings.ToUpper(strings.TrimSpace(n))]
	}
	return f
}

// FlagNames lists the names of the bits set in f, in bit order.
func FlagNames(f uint32) []string {
	var out []string
	for name, bit := range flagNames {
		if f&bit != 0 {
			out = append(out, name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return flagNames[out[i]] < flagNames[out[j]] })
	return out
}

// jFlags is Flags: an integer bitfield (before 1.8), a list of names (1.8+), or a string
// holding either (a label, or a "SYN,ACK" rendering).
type jFlags uint32

func (f *jFlags) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*f = 0
		return nil
	}
	if b[0] == '[' {
		var l jList
		if err := l.UnmarshalJSON(b); err != nil {
			return err
		}
		var v uint32
		for _, e := range l {
			// Names are the common case: ParseUint would allocate an error for each.
			if e != "" && e[0] >= '0' && e[0] <= '9' {
				if n, err := strconv.ParseUint(e, 10, 32); err == nil {
					v |= uint32(n)
					continue
				}
			}
			v |= FlagsFromNames(e)
		}
		*f = jFlags(v)
		return nil
	}
	var s jStr
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	v, err := parseFlags(string(s))
	*f = jFlags(v)
	return err
}

func parseFlags(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if s[0] >= '0' && s[0] <= '9' || s[0] == '-' {
		n, err := parseInteger(s)
		if err != nil || n < 0 || n > math.MaxUint32 {
			return 0, fmt.Errorf("flags %q are neither a bitfield nor flag names", s)
		}
		return uint32(n), nil
	}
	// Names: "SYN,ACK", "SYN|ACK", or the JSON text of a list (`| json` turns Flags into
	// `["SYN","ACK"]`, which then reaches us as a label).
	return FlagsFromNames(strings.FieldsFunc(s, func(r rune) bool {
		return strings.ContainsRune(`,|+ []"`, r)
	})...), nil
}

func isNull(b []byte) bool { return len(b) == 4 && string(b) == "null" }

func kind(b []byte) string {
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// wire is a flow record's JSON line as NetObserv writes it. Unknown fields are ignored.
type wire struct {
	SrcNamespace   jStr   `json:"SrcK8S_Namespace"`
	SrcOwnerName   jStr   `json:"SrcK8S_OwnerName"`
	SrcOwnerType   jStr   `json:"SrcK8S_OwnerType"`
	SrcName        jStr   `json:"SrcK8S_Name"`
	SrcType        jStr   `json:"SrcK8S_Type"`
	SrcHostName    jStr   `json:"SrcK8S_HostName"`
	SrcAddr        jStr   `json:"SrcAddr"`
	SrcPort        jInt   `json:"SrcPort"`
	SrcSubnetLabel jStr   `json:"SrcSubnetLabel"`
	DstNamespace   jStr   `json:"DstK8S_Namespace"`
	DstOwnerName   jStr   `json:"DstK8S_OwnerName"`
	DstOwnerType   jStr   `json:"DstK8S_OwnerType"`
	DstName        jStr   `json:"DstK8S_Name"`
	DstType        jStr   `json:"DstK8S_Type"`
	DstHostName    jStr   `json:"DstK8S_HostName"`
	DstAddr        jStr   `json:"DstAddr"`
	DstPort        jInt   `json:"DstPort"`
	DstSubnetLabel jStr   `json:"DstSubnetLabel"`
	Proto          jInt   `json:"Proto"`
	Flags          jFlags `json:"Flags"`
	FlowDirection  jStr   `json:"FlowDirection"`
	FlowLayer      jStr   `json:"K8S_FlowLayer"`
	ClusterName    jStr   `json:"K8S_ClusterName"`
	DNSName        jStr   `json:"DnsName"`
	DNSID          jInt   `json:"DnsId"`
	XlatSrcAddr    jStr   `json:"XlatSrcAddr"`
	XlatDstAddr    jStr   `json:"XlatDstAddr"`
	XlatSrcPort    jInt   `json:"XlatSrcPort"`
	XlatDstPort    jInt   `json:"XlatDstPort"`
	Bytes          jInt   `json:"Bytes"`
	Packets        jInt   `json:"Packets"`
	StartMs        jInt   `json:"TimeFlowStartMs"`
	EndMs          jInt   `json:"TimeFlowEndMs"`
	Duplicate      jBool  `json:"Duplicate"`
	Interfaces     jList  `json:"Interfaces"`
	IfDirections   jList  `json:"IfDirections"`
	Interface      jStr   `json:"Interface"`
	IfDirection    jStr   `json:"IfDirection"`
	Sampling       jInt   `json:"Sampling"`
	AgentIP        jStr   `json:"AgentIP"`
	Etype          jInt   `json:"Etype"`
	// Count is only in aggregated records (`matrix collect --save-flows`); nil when absent.
	Count *jInt `json:"Count"`
}

// labelSetters apply a stream label onto a wire record. Loki labels are strings; the
// setters parse them with the same rules as the JSON line. A label overrides the line.
var labelSetters = map[string]func(w *wire, v string) error{}

func init() {
	str := func(get func(w *wire) *jStr) func(*wire, string) error {
		return func(w *wire, v string) error { *get(w) = jStr(v); return nil }
	}
	num := func(get func(w *wire) *jInt) func(*wire, string) error {
		return func(w *wire, v string) error {
			if strings.TrimSpace(v) == "" {
				*get(w) = 0
				return nil
			}
			n, err := parseInteger(strings.TrimSpace(v))
			*get(w) = jInt(n)
			return err
		}
	}
	for name, g := range map[string]func(w *wire) *jStr{
		"SrcK8S_Namespace": func(w *wire) *jStr { return &w.SrcNamespace },
		"SrcK8S_OwnerName": func(w *wire) *jStr { return &w.SrcOwnerName },
		"SrcK8S_OwnerType": func(w *wire) *jStr { return &w.SrcOwnerType },
		"SrcK8S_Name":      func(w *wire) *jStr { return &w.SrcName },
		"SrcK8S_Type":      func(w *wire) *jStr { return &w.SrcType },
		"SrcK8S_HostName":  func(w *wire) *jStr { return &w.SrcHostName },
		"SrcAddr":          func(w *wire) *jStr { return &w.SrcAddr },
		"SrcSubnetLabel":   func(w *wire) *jStr { return &w.SrcSubnetLabel },
		"DstK8S_Namespace": func(w *wire) *jStr { return &w.DstNamespace },
		"DstK8S_OwnerName": func(w *wire) *jStr { return &w.DstOwnerName },
		"DstK8S_OwnerType": func(w *wire) *jStr { return &w.DstOwnerType },
		"DstK8S_Name":      func(w *wire) *jStr { return &w.DstName },
		"DstK8S_Type":      func(w *wire) *jStr { return &w.DstType },
		"DstK8S_HostName":  func(w *wire) *jStr { return &w.DstHostName },
		"DstAddr":          func(w *wire) *jStr { return &w.DstAddr },
		"DstSubnetLabel":   func(w *wire) *jStr { return &w.DstSubnetLabel },
		"FlowDirection":    func(w *wire) *jStr { return &w.FlowDirection },
		"K8S_FlowLayer":    func(w *wire) *jStr { return &w.FlowLayer },
		"K8S_ClusterName":  func(w *wire) *jStr { return &w.ClusterName },
		"DnsName":          func(w *wire) *jStr { return &w.DNSName },
		"XlatSrcAddr":      func(w *wire) *jStr { return &w.XlatSrcAddr },
		"XlatDstAddr":      func(w *wire) *jStr { return &w.XlatDstAddr },
		"Interface":        func(w *wire) *jStr { return &w.Interface },
		"IfDirection":      func(w *wire) *jStr { return &w.IfDirection },
		"AgentIP":          func(w *wire) *jStr { return &w.AgentIP },
	} {
		labelSetters[name] = str(g)
	}
	for name, g := range map[string]func(w *wire) *jInt{
		"SrcPort":         func(w *wire) *jInt { return &w.SrcPort },
		"DstPort":         func(w *wire) *jInt { return &w.DstPort },
		"Proto":           func(w *wire) *jInt { return &w.Proto },
		"DnsId":           func(w *wire) *jInt { return &w.DNSID },
		"XlatSrcPort":     func(w *wire) *jInt { return &w.XlatSrcPort },
		"XlatDstPort":     func(w *wire) *jInt { return &w.XlatDstPort },
		"Bytes":           func(w *wire) *jInt { return &w.Bytes },
		"Packets":         func(w *wire) *jInt { return &w.Packets },
		"TimeFlowStartMs": func(w *wire) *jInt { return &w.StartMs },
		"TimeFlowEndMs":   func(w *wire) *jInt { return &w.EndMs },
		"Sampling":        func(w *wire) *jInt { return &w.Sampling },
		"Etype":           func(w *wire) *jInt { return &w.Etype },
	} {
		labelSetters[name] = num(g)
	}
	labelSetters["Flags"] = func(w *wire, v string) error {
		f, err := parseFlags(v)
		w.Flags = jFlags(f)
		return err
	}
	labelSetters["Duplicate"] = func(w *wire, v string) error {
		return w.Duplicate.UnmarshalJSON([]byte(strconv.Quote(v)))
	}
}

// fieldError finds which field of a line a failed json.Unmarshal choked on, so the error
// names it. It runs only on the error path.
func fieldError(line []byte, err error) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal(line, &fields) != nil {
		return err
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		var w wire
		if e := json.Unmarshal(one, &w); e != nil {
			return fmt.Errorf("field %s = %s: %w", k, truncate(fields[k], 80), e)
		}
	}
	return err
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// record turns a decoded wire into a Record and checks what the matrix relies on.
func (w *wire) record() (Record, error) {
	r := Record{
		SrcNamespace:   string(w.SrcNamespace),
		SrcOwnerName:   string(w.SrcOwnerName),
		SrcOwnerType:   string(w.SrcOwnerType),
		SrcName:        string(w.SrcName),
		SrcType:        string(w.SrcType),
		SrcHostName:    string(w.SrcHostName),
		SrcAddr:        strings.TrimSpace(string(w.SrcAddr)),
		SrcPort:        int(w.SrcPort),
		SrcSubnetLabel: string(w.SrcSubnetLabel),
		DstNamespace:   string(w.DstNamespace),
		DstOwnerName:   string(w.DstOwnerName),
		DstOwnerType:   string(w.DstOwnerType),
		DstName:        string(w.DstName),
		DstType:        string(w.DstType),
		DstHostName:    string(w.DstHostName),
		DstAddr:        strings.TrimSpace(string(w.DstAddr)),
		DstPort:        int(w.DstPort),
		DstSubnetLabel: string(w.DstSubnetLabel),
		Proto:          int(w.Proto),
		Flags:          uint32(w.Flags),
		FlowDirection:  strings.TrimSpace(string(w.FlowDirection)),
		FlowLayer:      string(w.FlowLayer),
		ClusterName:    string(w.ClusterName),
		DNSName:        string(w.DNSName),
		DNSID:          int(w.DNSID),
		XlatSrcAddr:    string(w.XlatSrcAddr),
		XlatDstAddr:    string(w.XlatDstAddr),
		XlatSrcPort:    int(w.XlatSrcPort),
		XlatDstPort:    int(w.XlatDstPort),
		Bytes:          int64(w.Bytes),
		Packets:        int64(w.Packets),
		Duplicate:      bool(w.Duplicate),
		Sampling:       int(w.Sampling),
		AgentIP:        string(w.AgentIP),
		Etype:          int(w.Etype),
		Count:          1,
	}
	if len(w.Interfaces) > 0 {
		r.Interfaces = strings.Join(w.Interfaces, ",")
	} else {
		r.Interfaces = string(w.Interface)
	}
	if len(w.IfDirections) > 0 {
		r.IfDirections = strings.Join(w.IfDirections, ",")
	} else {
		r.IfDirections = string(w.IfDirection)
	}
	if w.StartMs != 0 {
		r.Start = time.UnixMilli(int64(w.StartMs)).UTC()
	}
	if w.EndMs != 0 {
		r.End = time.UnixMilli(int64(w.EndMs)).UTC()
	}
	agg := w.Count != nil
	if agg {
		if *w.Count <= 0 {
			return Record{}, fmt.Errorf("field Count = %d: an aggregated record stands for at least one flow record; write Count >= 1, or drop Count on a single record", int64(*w.Count))
		}
		r.Count = int64(*w.Count)
	} else {
		for _, p := range []struct {
			name string
			v    int
		}{{"SrcPort", r.SrcPort}, {"DstPort", r.DstPort}} {
			if p.v == EphemeralPort {
				return Record{}, fmt.Errorf("%s -1 is not a port (0-65535): -1 (any ephemeral port) is only valid in an aggregated record, which carries a Count field as `matrix collect --save-flows` writes it; a NetObserv record never has it: write the real port, or add \"Count\" if the line is an aggregate", p.name)
			}
		}
	}
	return r, r.validate(agg)
}

// validate rejects what would silently corrupt the matrix: a record with no address (not a
// flow record at all, e.g. another JSON document), an address that is not an IP, a port or
// protocol out of range, negative counters, a Count below 1. agg says the record is a
// server-side aggregate (it had a Count field): its SrcPort/DstPort may be EphemeralPort, and
// a DNS aggregate (DnsName set) may have no address, since Loki grouped it by name only.
func (r *Record) validate(agg bool) error {
	if r.Count < 1 {
		return fmt.Errorf("field Count = %d: a record stands for at least one flow record", r.Count)
	}
	if r.IsIP() && !(agg && r.DNSName != "") {
		// Non-IP records (ARP) legitimately have no address; an IP record without what
		// places it cannot be counted anywhere, and "not egress" would drop it silently:
		// without DstAddr nothing says whether it left the cluster; without SrcAddr only a
		// pod (by its namespace) or a node (by its name) is placed, which is why the
		// projected records --save-flows writes may drop a pod's address.
		switch {
		case r.SrcAddr == "" && r.DstAddr == "":
			return errors.New("not a flow record: it has neither SrcAddr nor DstAddr (nor a non-IP Etype)")
		case r.DstAddr == "":
			return errors.New("IP flow record with no DstAddr: it cannot be placed (egress or not); a NetObserv record always has one")
		case r.SrcAddr == "" && !(r.SrcType == "Pod" && r.SrcNamespace != "") && !(r.SrcType == "Node" && (r.SrcName != "" || r.SrcHostName != "")):
			return errors.New("IP flow record with no SrcAddr: its source cannot be placed (only a pod with SrcK8S_Namespace, or a node with SrcK8S_Name, is placed without it); a NetObserv record always has one")
		}
	}
	if r.Etype < 0 || r.Etype > 0xFFFF {
		return fmt.Errorf("field Etype = %d is not an Ethernet type (0-65535)", r.Etype)
	}
	for _, a := range []struct{ name, v string }{{"SrcAddr", r.SrcAddr}, {"DstAddr", r.DstAddr}} {
		if a.v == "" {
			continue
		}
		if _, err := netip.ParseAddr(a.v); err != nil {
			return fmt.Errorf("%s %q is not an IP address", a.name, a.v)
		}
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"SrcPort", r.SrcPort}, {"DstPort", r.DstPort}, {"XlatSrcPort", r.XlatSrcPort}, {"XlatDstPort", r.XlatDstPort}} {
		if agg && p.v == EphemeralPort && (p.name == "SrcPort" || p.name == "DstPort") {
			continue
		}
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("%s %d is not a port (0-65535)", p.name, p.v)
		}
	}
	if r.Proto < 0 || r.Proto > 255 {
		return fmt.Errorf("field Proto = %d is not an IP protocol number (0-255)", r.Proto)
	}
	if r.Bytes < 0 || r.Packets < 0 || r.Sampling < 0 {
		return fmt.Errorf("negative Bytes/Packets/Sampling (%d/%d/%d)", r.Bytes, r.Packets, r.Sampling)
	}
	if !r.Start.IsZero() && !r.End.IsZero() && r.End.Before(r.Start) {
		return fmt.Errorf("TimeFlowEndMs %d is before TimeFlowStartMs %d", r.End.UnixMilli(), r.Start.UnixMilli())
	}
	return nil
}
