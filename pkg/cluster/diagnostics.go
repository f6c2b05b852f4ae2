package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// maxLogBytes bounds each container log kept in the artifacts: the tail is what explains a
// failure.
const maxLogBytes = 1 << 20

// CollectDiagnostics writes what explains an install that did not come up into
// dir/diagnostics: the OLM objects, FlowCollector and LokiStack (status included), events
// and pod statuses and logs of each namespace. It keeps going past errors and returns them
// joined; secrets are never read.
func CollectDiagnostics(ctx context.Context, c *Clients, dir string, namespaces []string) error {
	out := filepath.Join(dir, "diagnostics")
	var errs []error
	dump := func(name string, v any) {
		data, err := yaml.Marshal(v)
		if err == nil {
			err = WriteArtifact(out, name, data)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if fc, err := c.Dynamic.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{}); err == nil {
		dump("flowcollector.yaml", fc.Object)
	}
	for _, ns := range namespaces {
		for name, gvr := range map[string]GVR{"subscriptions": gvrSubscription, "clusterserviceversions": gvrCSV, "installplans": gvrInstallPlan, "operatorgroups": gvrOperatorGroup, "lokistacks": gvrLokiStack} {
			list, err := c.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil || len(list.Items) == 0 {
				continue // the kind may not exist on this cluster
			}
			items := make([]map[string]any, 0, len(list.Items))
			for _, it := range list.Items {
				unstructured.RemoveNestedField(it.Object, "metadata", "managedFields")
				items = append(items, it.Object)
			}
			dump(filepath.Join(ns, name+".yaml"), items)
		}
		events, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("events of %s: %w", ns, err))
		} else {
			sort.Slice(events.Items, func(i, j int) bool { return eventTime(events.Items[i]).Time.Before(eventTime(events.Items[j]).Time) })
			var b strings.Builder
			for _, e := range events.Items {
				fmt.Fprintf(&b, "%s %s %s/%s %s: %s\n", eventTime(e).UTC().Format("15:04:05"), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
			if err := WriteArtifact(out, filepath.Join(ns, "events.txt"), []byte(b.String())); err != nil {
				errs = append(errs, err)
			}
		}
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("pods of %s: %w", ns, err))
			continue
		}
		var status strings.Builder
		for _, p := range pods.Items {
			fmt.Fprintf(&status, "%s phase=%s node=%s\n", p.Name, p.Status.Phase, p.Spec.NodeName)
			for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				fmt.Fprintf(&status, "  %s ready=%t restarts=%d %s\n", cs.Name, cs.Ready, cs.RestartCount, containerState(cs.State))
			}
			for _, ctr := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				data, err := c.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: ctr.Name, LimitBytes: ptr.To[int64](maxLogBytes)}).DoRaw(ctx)
				if err != nil {
					data = []byte("(no log: " + err.Error() + ")\n")
				}
				if err := WriteArtifact(out, filepath.Join(ns, "logs", p.Name+"_"+ctr.Name+".log"), data); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := WriteArtifact(out, filepath.Join(ns, "pods.txt"), []byte(status.String())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func eventTime(e corev1.Event) metav1.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp
	}
	if !e.EventTime.IsZero() {
		return metav1.Time{Time: e.EventTime.Time}
	}
	return e.CreationTimestamp
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason + " " + s.Waiting.Message
	case s.Terminated != nil:
		return fmt.Sprintf("terminated %s exit %d %s", s.Terminated.Reason, s.Terminated.ExitCode, s.Terminated.Message)
	case s.Running != nil:
		return "running"
	}
	return "unknown"
}
