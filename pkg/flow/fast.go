package flow

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/grafana/jsonparser"
)

// wireFields are the fields of wire by JSON name, for the one-pass decode. The test
// TestWireFieldsCoverWire keeps them in step with wire's tags.
var wireFields = map[string]func(w *wire) json.Unmarshaler{
	"SrcK8S_Namespace": func(w *wire) json.Unmarshaler { return &w.SrcNamespace },
	"SrcK8S_OwnerName": func(w *wire) json.Unmarshaler { return &w.SrcOwnerName },
	"SrcK8S_OwnerType": func(w *wire) json.Unmarshaler { return &w.SrcOwnerType },
	"SrcK8S_Name":      func(w *wire) json.Unmarshaler { return &w.SrcName },
	"SrcK8S_Type":      func(w *wire) json.Unmarshaler { return &w.SrcType },
	"SrcK8S_HostName":  func(w *wire) json.Unmarshaler { return &w.SrcHostName },
	"SrcAddr":          func(w *wire) json.Unmarshaler { return &w.SrcAddr },
	"SrcPort":          func(w *wire) json.Unmarshaler { return &w.SrcPort },
	"SrcSubnetLabel":   func(w *wire) json.Unmarshaler { return &w.SrcSubnetLabel },
	"DstK8S_Namespace": func(w *wire) json.Unmarshaler { return &w.DstNamespace },
	"DstK8S_OwnerName": func(w *wire) json.Unmarshaler { return &w.DstOwnerName },
	"DstK8S_OwnerType": func(w *wire) json.Unmarshaler { return &w.DstOwnerType },
	"DstK8S_Name":      func(w *wire) json.Unmarshaler { return &w.DstName },
	"DstK8S_Type":      func(w *wire) json.Unmarshaler { return &w.DstType },
	"DstK8S_HostName":  func(w *wire) json.Unmarshaler { return &w.DstHostName },
	"DstAddr":          func(w *wire) json.Unmarshaler { return &w.DstAddr },
	"DstPort":          func(w *wire) json.Unmarshaler { return &w.DstPort },
	"DstSubnetLabel":   func(w *wire) json.Unmarshaler { return &w.DstSubnetLabel },
	"Proto":            func(w *wire) json.Unmarshaler { return &w.Proto },
	"Flags":            func(w *wire) json.Unmarshaler { return &w.Flags },
	"FlowDirection":    func(w *wire) json.Unmarshaler { return &w.FlowDirection },
	"K8S_FlowLayer":    func(w *wire) json.Unmarshaler { return &w.FlowLayer },
	"K8S_ClusterName":  func(w *wire) json.Unmarshaler { return &w.ClusterName },
	"DnsName":          func(w *wire) json.Unmarshaler { return &w.DNSName },
	"DnsId":            func(w *wire) json.Unmarshaler { return &w.DNSID },
	"XlatSrcAddr":      func(w *wire) json.Unmarshaler { return &w.XlatSrcAddr },
	"XlatDstAddr":      func(w *wire) json.Unmarshaler { return &w.XlatDstAddr },
	"XlatSrcPort":      func(w *wire) json.Unmarshaler { return &w.XlatSrcPort },
	"XlatDstPort":      func(w *wire) json.Unmarshaler { return &w.XlatDstPort },
	"Bytes":            func(w *wire) json.Unmarshaler { return &w.Bytes },
	"Packets":          func(w *wire) json.Unmarshaler { return &w.Packets },
	"TimeFlowStartMs":  func(w *wire) json.Unmarshaler { return &w.StartMs },
	"TimeFlowEndMs":    func(w *wire) json.Unmarshaler { return &w.EndMs },
	"Duplicate":        func(w *wire) json.Unmarshaler { return &w.Duplicate },
	"Interfaces":       func(w *wire) json.Unmarshaler { return &w.Interfaces },
	"IfDirections":     func(w *wire) json.Unmarshaler { return &w.IfDirections },
	"Interface":        func(w *wire) json.Unmarshaler { return &w.Interface },
	"IfDirection":      func(w *wire) json.Unmarshaler { return &w.IfDirection },
	"Sampling":         func(w *wire) json.Unmarshaler { return &w.Sampling },
	"AgentIP":          func(w *wire) json.Unmarshaler { return &w.AgentIP },
	"Etype":            func(w *wire) json.Unmarshaler { return &w.Etype },
	"Count": func(w *wire) json.Unmarshaler {
		if w.Count == nil {
			w.Count = new(jInt)
		}
		return w.Count
	},
}

// foldedFields are the names of wireFields in ASCII lower case: encoding/json matches a key
// to a field whatever its case, and a line with such a key takes encoding/json's path.
var foldedFields = map[string]bool{}

func init() {
	for k := range wireFields {
		foldedFields[string(lowerASCII(nil, []byte(k)))] = true
	}
}

func lowerASCII(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// unmarshalWire fills w from a JSON line as json.Unmarshal(line, w) does, faster (decoding
// lines is most of what a raw Loki read costs the client; docs/performance.md). The line
// is walked once and each known field's raw value goes to the same UnmarshalJSON method
// encoding/json would call. json.Valid first gives the same acceptance of malformed lines
// (jsonparser alone skips unknown values loosely, and stops at the first object); where the
// field match could differ (an escaped key, a key in another case) or a value fails, the
// line goes through json.Unmarshal, whose errors are the ones reported.
func unmarshalWire(line []byte, w *wire) error {
	if json.Valid(line) && fastWire(line, w) {
		return nil
	}
	*w = wire{}
	return json.Unmarshal(line, w)
}

// fastWire is the one-pass decode; false means "take encoding/json's path" (the walk
// stops at the first thing it cannot take, and ObjectEach returns that error).
func fastWire(line []byte, w *wire) bool {
	var scratch [32]byte
	return jsonparser.ObjectEach(line, func(key, value []byte, t jsonparser.ValueType, end int) error {
		if set := wireFields[string(key)]; set != nil {
			raw := value
			if t == jsonparser.String {
				// ObjectEach hands strings without their quotes; the methods want JSON.
				start := end - len(value) - 2
				if start < 0 || line[start] != '"' || line[end-1] != '"' {
					return errSlowPath
				}
				raw = line[start:end]
			}
			if set(w).UnmarshalJSON(raw) != nil {
				return errSlowPath
			}
			return nil
		}
		// An escaped key, or a known name in another case, may match a field for
		// encoding/json; any other key is a field wire does not have.
		if bytes.IndexByte(key, '\\') >= 0 || len(key) <= len(scratch) && foldedFields[string(lowerASCII(scratch[:0], key))] {
			return errSlowPath
		}
		return nil
	}) == nil
}

// errSlowPath stops the one-pass walk: the line takes encoding/json's path.
var errSlowPath = errors.New("take encoding/json's path")

// fastList reads a JSON list of plain values (Flags, Interfaces, IfDirections) as jStr
// would read each; false, with *l in any state, for anything else (an escaped string, a
// nested value), which then takes encoding/json's path.
func (l *jList) fastList(b []byte) bool {
	ok := true
	_, err := jsonparser.ArrayEach(b, func(v []byte, t jsonparser.ValueType, _ int, err error) {
		if !ok || err != nil {
			ok = false
			return
		}
		switch t {
		case jsonparser.String:
			if bytes.IndexByte(v, '\\') >= 0 {
				ok = false
				return
			}
			*l = append(*l, string(v))
		case jsonparser.Number, jsonparser.Boolean:
			*l = append(*l, string(v))
		case jsonparser.Null:
			*l = append(*l, "")
		default:
			ok = false
		}
	})
	return ok && err == nil
}
