package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// File is one rendered output file.
type File struct {
	Name string // base name, e.g. "egressfirewall-openshift-monitoring.yaml"
	Data []byte
}

// Rendered is the result of Render: the files of one format and what they leave out.
type Rendered struct {
	Format      string
	Files       []File
	Unexpressed []Unexpressed
}

// Render builds the files of one format (see Formats) from a baseline. Kubernetes objects are
// encoded with sigs.k8s.io/yaml from typed structs, nftables through the typed Ruleset writer.
func Render(format string, b *baseline.Baseline, opts Options) (*Rendered, error) {
	if b == nil {
		return nil, errors.New("no baseline to render")
	}
	// A rule for "*.{appsDomain}" would allow nothing, or worse a literal name: the
	// cluster's values must be in first.
	if err := baseline.Unresolved(b); err != nil {
		return nil, fmt.Errorf("the baseline has placeholders without values (pass --cluster-domain, --region, --bmc-network): %w", err)
	}
	r := &Rendered{Format: format}
	var err error
	switch format {
	case FormatEgressFirewall:
		var objs []EgressFirewall
		if objs, r.Unexpressed, err = EgressFirewalls(b, opts); err != nil {
			return nil, err
		}
		for _, o := range objs {
			f, err := yamlFile("egressfirewall-"+o.Metadata.Namespace+".yaml", format, opts, b, r.notExpressed(), o)
			if err != nil {
				return nil, err
			}
			r.Files = append(r.Files, f)
		}
	case FormatAdminNetworkPolicy:
		var objs []AdminNetworkPolicy
		if objs, r.Unexpressed, err = AdminNetworkPolicies(b, opts); err != nil {
			return nil, err
		}
		for _, o := range objs {
			f, err := yamlFile("adminnetworkpolicy-"+o.Metadata.Name+".yaml", format, opts, b, r.notExpressed(), o)
			if err != nil {
				return nil, err
			}
			r.Files = append(r.Files, f)
		}
	case FormatNFTables, FormatMachineConfig:
		var sets []RoleRuleset
		if sets, r.Unexpressed, err = NFTables(b, opts); err != nil {
			return nil, err
		}
		if format == FormatNFTables {
			for _, s := range sets {
				var buf bytes.Buffer
				if _, err := s.Ruleset.WriteTo(&buf); err != nil {
					return nil, fmt.Errorf("nftables for role %s: %w", s.Role, err)
				}
				r.Files = append(r.Files, File{Name: "nftables-" + s.Role + ".nft", Data: buf.Bytes()})
			}
			break
		}
		for i := range r.Unexpressed {
			r.Unexpressed[i].Format = FormatMachineConfig
		}
		mcs, err := MachineConfigs(sets, opts)
		if err != nil {
			return nil, err
		}
		for _, mc := range mcs {
			role := mc.Metadata.Labels[machineConfigRoleLabel]
			f, err := yamlFile("machineconfig-"+mc.Metadata.Name+".yaml", format, opts, b, notExpressedForRole(r.Unexpressed, role), mc)
			if err != nil {
				return nil, err
			}
			r.Files = append(r.Files, f)
		}
	default:
		return nil, fmt.Errorf("unknown firewall format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	return r, nil
}

func (r *Rendered) notExpressed() int {
	c := collector{list: r.Unexpressed}
	return c.notExpressed()
}

func yamlFile(name, format string, opts Options, b *baseline.Baseline, unexpressed int, obj any) (File, error) {
	body, err := yaml.Marshal(obj)
	if err != nil {
		return File{}, fmt.Errorf("encode %s: %w", name, err)
	}
	var buf bytes.Buffer
	for _, l := range header(format, opts.Meta, b, unexpressed) {
		buf.WriteString("# " + l + "\n")
	}
	buf.Write(body)
	return File{Name: name, Data: buf.Bytes()}, nil
}

// WriteDir writes every file into dir (created if needed) and, when some entries were left
// out, unexpressed-<format>.txt listing them.
func (r *Rendered) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	files := r.Files
	if len(r.Unexpressed) > 0 {
		var buf bytes.Buffer
		r.writeUnexpressed(&buf, "")
		files = append(files[:len(files):len(files)], File{Name: "unexpressed-" + r.Format + ".txt", Data: buf.Bytes()})
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}

// WriteTo writes everything to one stream: the left-out entries as comments, then the files
// (YAML documents separated by "---"; nftables rulesets one after another, each headed by its
// file name, to be split per role before loading).
func (r *Rendered) WriteTo(w io.Writer) (int64, error) {
	var buf bytes.Buffer
	r.writeUnexpressed(&buf, "# ")
	for i, f := range r.Files {
		if r.Format == FormatNFTables {
			fmt.Fprintf(&buf, "\n# ==== %s ====\n", f.Name)
		} else if i > 0 || buf.Len() > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(f.Data)
	}
	n, err := w.Write(buf.Bytes())
	return int64(n), err
}

func (r *Rendered) writeUnexpressed(buf *bytes.Buffer, prefix string) {
	if len(r.Unexpressed) == 0 {
		return
	}
	fmt.Fprintf(buf, "%sBaseline entries the %s output leaves out or narrows (%d):\n", prefix, r.Format, len(r.Unexpressed))
	for _, u := range r.Unexpressed {
		fmt.Fprintf(buf, "%s- %s\n", prefix, strings.ReplaceAll(u.String(), "\n", " "))
	}
}
