package baseline

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
)

// Layout of a baseline tree (see baseline/README.md):
//
//	<dir>/<major.minor>/common.yaml
//	<dir>/<major.minor>/platform/<platform>.yaml   (optional; platform lower-cased: aws, baremetal, none)
//	<dir>/<major.minor>/topology/<topology>.yaml   (optional; HighlyAvailable, SingleReplica, ...)
const (
	CommonFile  = "common.yaml"
	PlatformDir = "platform"
	TopologyDir = "topology"
	fileExt     = ".yaml"
	// major.minor, or major.minor.patch with an optional pre-release (as ClusterVersion
	// writes them): nothing else, so that 4.21.x or 4.21.3.4 is not read as 4.21.
	versionRegex = `^(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z][0-9A-Za-z.-]*)?)?$`
)

// Platforms are the Infrastructure.status.platformStatus.type values; their lower-cased
// names name the platform files.
var Platforms = []configv1.PlatformType{
	configv1.AWSPlatformType, configv1.AzurePlatformType, configv1.BareMetalPlatformType,
	configv1.GCPPlatformType, configv1.LibvirtPlatformType, configv1.OpenStackPlatformType,
	configv1.NonePlatformType, configv1.VSpherePlatformType, configv1.OvirtPlatformType,
	configv1.IBMCloudPlatformType, configv1.KubevirtPlatformType, configv1.EquinixMetalPlatformType,
	configv1.PowerVSPlatformType, configv1.AlibabaCloudPlatformType, configv1.NutanixPlatformType,
	configv1.ExternalPlatformType,
}

// Topologies are the Infrastructure.status.controlPlaneTopology values that name topology files.
var Topologies = []configv1.TopologyMode{
	configv1.HighlyAvailableTopologyMode, configv1.HighlyAvailableArbiterMode,
	configv1.SingleReplicaTopologyMode, configv1.DualReplicaTopologyMode, configv1.ExternalTopologyMode,
}

// Selection is the result of Select: the files picked, and why others were not.
type Selection struct {
	Version string   // major.minor
	Files   []string // common first, then platform, then topology
	Notes   []string // one line per optional file that is absent or skipped
}

var versionRE = regexp.MustCompile(versionRegex)

// MinorVersion returns "4.21" for "4.21", "4.21.3", "4.21.0-rc.1" or "4.21.0-0.nightly-...".
func MinorVersion(version string) (string, error) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return "", fmt.Errorf("version %q is not an OpenShift version; fix: give major.minor or major.minor.patch, e.g. 4.21 or 4.21.3 (a pre-release as ClusterVersion writes it, 4.21.0-rc.1, is read as 4.21)", version)
	}
	return m[1] + "." + m[2], nil
}

// PlatformFileName returns the file name stem of a platform ("AWS" -> "aws"), or an error
// listing the known platforms.
func PlatformFileName(platform string) (string, error) {
	for _, p := range Platforms {
		if strings.EqualFold(string(p), platform) {
			return strings.ToLower(string(p)), nil
		}
	}
	return "", fmt.Errorf("unknown platform %q; fix: use Infrastructure.status.platformStatus.type, one of %s", platform, platformList())
}

// TopologyFileName returns the file name stem of a topology ("singlereplica" -> "SingleReplica").
func TopologyFileName(topology string) (string, error) {
	for _, t := range Topologies {
		if strings.EqualFold(string(t), topology) {
			return string(t), nil
		}
	}
	var names []string
	for _, t := range Topologies {
		names = append(names, string(t))
	}
	return "", fmt.Errorf("unknown topology %q; fix: use Infrastructure.status.controlPlaneTopology, one of %s", topology, strings.Join(names, ", "))
}

func platformList() string {
	var names []string
	for _, p := range Platforms {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

// Select picks the baseline files of one cluster under dir. The version directory and its
// common.yaml must exist; platform and topology files are optional (an empty platform or
// topology skips that file). Selection.Notes says which optional files were not used.
func Select(dir, version, platform, topology string) ([]string, error) {
	s, err := SelectFiles(dir, version, platform, topology)
	if err != nil {
		return nil, err
	}
	return s.Files, nil
}

// SelectFiles is Select with the notes on the optional files.
func SelectFiles(dir, version, platform, topology string) (*Selection, error) {
	return selectFiles(osFS{}, dir, version, platform, topology)
}

// SelectFS is SelectFiles in fsys (e.g. the embedded baseline tree, dir "."); load the
// result with LoadFS.
func SelectFS(fsys fs.FS, dir, version, platform, topology string) (*Selection, error) {
	return selectFiles(ioFS{fsys}, dir, version, platform, topology)
}

func selectFiles(fsys fileSystem, dir, version, platform, topology string) (*Selection, error) {
	minor, err := MinorVersion(version)
	if err != nil {
		return nil, err
	}
	s := &Selection{Version: minor}
	vdir := fsys.join(dir, minor)
	if fi, err := fsys.stat(vdir); err != nil || !fi.IsDir() {
		present, lerr := versions(fsys, dir)
		if lerr != nil {
			return nil, lerr
		}
		fix := fmt.Sprintf("create %s with a %s", vdir, CommonFile)
		if len(present) > 0 {
			newest := present[len(present)-1]
			fix = fmt.Sprintf("start from the newest baseline: cp -r %s %s, run the suite on %s and review `egress-tests-ext baseline update`", fsys.join(dir, newest), vdir, minor)
		}
		return nil, fmt.Errorf("no baseline for OpenShift %s in %s (versions present: %s); fix: %s",
			minor, dir, orNone(strings.Join(present, ", ")), fix)
	}
	common := fsys.join(vdir, CommonFile)
	if _, err := fsys.stat(common); err != nil {
		return nil, fmt.Errorf("%s is missing (every version directory has one, even if it only holds `entries: []`): %w", common, err)
	}
	s.Files = append(s.Files, common)

	if platform == "" {
		s.Notes = append(s.Notes, "no platform given: platform files skipped")
	} else {
		name, err := PlatformFileName(platform)
		if err != nil {
			return nil, err
		}
		f := fsys.join(vdir, PlatformDir, name+fileExt)
		if exists(fsys, f) {
			s.Files = append(s.Files, f)
		} else {
			s.Notes = append(s.Notes, fmt.Sprintf("no %s: nothing documented for platform %s", f, name))
		}
	}
	if topology == "" {
		s.Notes = append(s.Notes, "no topology given: topology files skipped")
	} else {
		name, err := TopologyFileName(topology)
		if err != nil {
			return nil, err
		}
		f := fsys.join(vdir, TopologyDir, name+fileExt)
		if exists(fsys, f) {
			s.Files = append(s.Files, f)
		} else {
			s.Notes = append(s.Notes, fmt.Sprintf("no %s: nothing documented for topology %s", f, name))
		}
	}
	return s, nil
}

// Versions lists the major.minor directories under dir, oldest first.
func Versions(dir string) ([]string, error) { return versions(osFS{}, dir) }

// VersionsFS is Versions in fsys.
func VersionsFS(fsys fs.FS, dir string) ([]string, error) { return versions(ioFS{fsys}, dir) }

func versions(fsys fileSystem, dir string) ([]string, error) {
	des, err := fsys.readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list baseline directory %s: %w; fix: point --baseline at the baseline/ tree of the repository", dir, err)
	}
	type v struct {
		name         string
		major, minor int
	}
	var vs []v
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		m := regexp.MustCompile(`^(\d+)\.(\d+)$`).FindStringSubmatch(de.Name())
		if m == nil {
			continue
		}
		maj, _ := strconv.Atoi(m[1])
		min, _ := strconv.Atoi(m[2])
		vs = append(vs, v{de.Name(), maj, min})
	}
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].major != vs[j].major {
			return vs[i].major < vs[j].major
		}
		return vs[i].minor < vs[j].minor
	})
	out := make([]string, len(vs))
	for i := range vs {
		out[i] = vs[i].name
	}
	return out, nil
}

// TreeFiles lists every baseline file of a tree (all versions, platforms and topologies), for
// checks that must cover them all. A file in a wrong place or with a wrong name is an error.
func TreeFiles(dir string) ([]string, error) { return treeFiles(osFS{}, dir) }

// TreeFilesFS is TreeFiles in fsys.
func TreeFilesFS(fsys fs.FS, dir string) ([]string, error) { return treeFiles(ioFS{fsys}, dir) }

func treeFiles(fsys fileSystem, dir string) ([]string, error) {
	var files []string
	var errs []error
	known := map[string]bool{}
	for _, p := range Platforms {
		known[PlatformDir+"/"+strings.ToLower(string(p))+fileExt] = true
	}
	for _, t := range Topologies {
		known[TopologyDir+"/"+string(t)+fileExt] = true
	}
	vs, err := versions(fsys, dir)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		vdir := fsys.join(dir, v)
		err := fsys.walkDir(vdir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := fsys.rel(vdir, p)
			rel = filepath.ToSlash(rel)
			switch {
			case rel == CommonFile || known[rel]:
				files = append(files, p)
			case strings.HasSuffix(rel, fileExt) || strings.HasSuffix(rel, ".yml"):
				errs = append(errs, fmt.Errorf("%s: not a baseline file name; fix: use %s, %s/<platform>.yaml (one of %s, lower case) or %s/<topology>.yaml", p, CommonFile, PlatformDir, platformList(), TopologyDir))
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return files, errors.Join(errs...)
}

func exists(fsys fileSystem, p string) bool {
	fi, err := fsys.stat(p)
	return err == nil && !fi.IsDir()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
