package cluster

import (
	"fmt"
	"strings"
)

// CreatedRef is one Created object as it is stored between processes: `capture start`
// records what it installed and `capture stop`, a later process, removes exactly that.
// Group/Version/Resource are set for objects made through the dynamic client, Kind for
// the core objects made through the typed client.
type CreatedRef struct {
	Kind      string `json:"kind,omitempty"`
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	WaitGone  bool   `json:"waitGone,omitempty"`
}

func (r CreatedRef) String() string {
	what := r.Kind
	if what == "" {
		what = r.Resource
	}
	return what + " " + nsName(r.Namespace, r.Name)
}

// Refs lists what was created, oldest first, in the stored form.
func (t *Tracker) Refs() []CreatedRef {
	var out []CreatedRef
	for _, c := range t.Created() {
		if c.GVR.Resource != "" {
			out = append(out, CreatedRef{Group: c.GVR.Group, Version: c.GVR.Version, Resource: c.GVR.Resource,
				Namespace: c.Namespace, Name: c.Name, WaitGone: c.WaitGone})
			continue
		}
		out = append(out, CreatedRef{Kind: c.Resource, Namespace: c.Namespace, Name: c.Name, WaitGone: c.WaitGone})
	}
	return out
}

// RestoreTracker rebuilds a Tracker from stored refs, so that its Cleanup deletes them the
// way the process that created them would have. A ref that names neither a known kind nor a
// resource is an error naming it: cleaning up around it would leave it behind silently.
func RestoreTracker(c *Clients, refs []CreatedRef) (*Tracker, error) {
	t := &Tracker{}
	var bad []string
	for i, r := range refs {
		switch {
		case r.Name == "":
			bad = append(bad, fmt.Sprintf("entry %d (%s): no name", i, r))
		case r.Resource != "" && r.Kind == "":
			t.Add(GVR{Group: r.Group, Version: r.Version, Resource: r.Resource}, r.Namespace, r.Name, r.WaitGone)
		case r.Kind != "" && r.Resource == "":
			created, err := typedCreated(c, r.Kind, r.Namespace, r.Name)
			if err != nil {
				bad = append(bad, fmt.Sprintf("entry %d: %v", i, err))
				continue
			}
			t.add(created)
		default:
			bad = append(bad, fmt.Sprintf("entry %d (%s): want either kind or group/version/resource", i, r))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("install record holds objects that cannot be cleaned up:\n  %s", strings.Join(bad, "\n  "))
	}
	return t, nil
}
