package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
)

// Names of the suite's workloads; the matrix recognises their flows by them.
const (
	CanaryName   = "egress-canary"
	ResolverName = "egress-resolver"
)

// ToolsImage is the image with curl and getent for the canary and the resolver: the
// EGRESS_TOOLS_IMAGE override, else the cluster's own openshift/tools image stream (part of
// the release payload, so no extra registry access), referenced by digest, else (no such
// stream) DefaultToolsImage.
func ToolsImage(ctx context.Context, c *Clients, cfg *Config) (string, error) {
	if cfg.ToolsImage != "" {
		return cfg.ToolsImage, nil
	}
	is, err := c.Dynamic.Resource(gvrImageStream).Namespace("openshift").Get(ctx, "tools", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c.progress("no image stream openshift/tools: the canary and the resolver use %s (set EGRESS_TOOLS_IMAGE to choose another)", DefaultToolsImage)
		return DefaultToolsImage, nil
	}
	if err != nil {
		return "", fmt.Errorf("read image stream openshift/tools for the canary's image (set EGRESS_TOOLS_IMAGE to an image with curl and getent instead): %w", err)
	}
	tags, _, _ := unstructured.NestedSlice(is.Object, "status", "tags")
	for _, tg := range tags {
		m, _ := tg.(map[string]any)
		if m["tag"] != "latest" {
			continue
		}
		items, _ := m["items"].([]any)
		if len(items) == 0 {
			break
		}
		first, _ := items[0].(map[string]any)
		if ref, _ := first["dockerImageReference"].(string); ref != "" {
			return ref, nil
		}
	}
	return "", fmt.Errorf("image stream openshift/tools has no imported tag latest: set EGRESS_TOOLS_IMAGE to an image with curl and getent")
}

// restrictedContainer is the security context every suite container runs with, so that the
// restricted-v2 SCC admits it without a fixed UID.
func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Privileged:               ptr.To(false),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func restrictedPod() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
}

// canaryScript connects to host:port a few times and prints the address it reached, so the
// spec can find that exact flow. It fails only if no attempt connected.
func canaryScript(host string, port int) string {
	return fmt.Sprintf(`ok=0
for i in 1 2 3; do
  if ip=$(curl -sS -o /dev/null --connect-timeout 10 --max-time 30 -w '%%{remote_ip}' 'https://%s:%d/'); then
    echo "connected $ip"; ok=1
  else
    echo "attempt $i failed (remote ${ip:-none})"
  fi
  sleep 5
done
test "$ok" = 1
`, host, port)
}

// CanaryJob is the known egress: a Job whose pod connects to host:port outside the cluster.
// If its flow is not in Loki afterwards the pipeline is broken, not the cluster clean. It
// connects directly, ignoring a cluster-wide proxy: the flow to check is the one to the
// address curl prints.
func CanaryJob(namespace, image, host string, port int) *batchv1.Job {
	labels := map[string]string{"app.kubernetes.io/name": CanaryName, "app.kubernetes.io/part-of": "egress-flow-matrix"}
	c := corev1.Container{
		Name:            "canary",
		Image:           image,
		Command:         []string{"/bin/sh", "-c", canaryScript(host, port)},
		SecurityContext: restrictedContainer(),
		Resources:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: CanaryName, Namespace: namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:   corev1.RestartPolicyNever,
					SecurityContext: restrictedPod(),
					Containers:      []corev1.Container{c},
				},
			},
		},
	}
}

// CanaryResult is what the canary reached.
type CanaryResult struct {
	Addresses []string  // remote addresses curl connected to
	Start     time.Time // the Job's start
	End       time.Time // its completion
}

// RunCanary creates the canary Job (replacing a finished one left by an earlier run), waits
// for it to complete and returns the addresses it connected to, read from its pods' logs.
func RunCanary(ctx context.Context, c *Clients, t *Tracker, job *batchv1.Job, timeout time.Duration) (*CanaryResult, error) {
	jobs := c.Kube.BatchV1().Jobs(job.Namespace)
	if _, err := jobs.Get(ctx, job.Name, metav1.GetOptions{}); err == nil {
		bg := metav1.DeletePropagationBackground
		if err := jobs.Delete(ctx, job.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete the previous canary Job: %w", err)
		}
		if err := waitFor(ctx, c, "previous canary Job deleted", time.Second, time.Minute, func(ctx context.Context) (bool, string, error) {
			_, err := jobs.Get(ctx, job.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), "deleting", nil
		}); err != nil {
			return nil, err
		}
	}
	if err := createTyped(ctx, c, t, job); err != nil {
		return nil, err
	}
	res := &CanaryResult{}
	err := waitFor(ctx, c, "canary Job "+job.Namespace+"/"+job.Name, 2*time.Second, timeout, func(ctx context.Context) (bool, string, error) {
		j, err := jobs.Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return false, "reading: " + err.Error(), nil
		}
		if j.Status.StartTime != nil {
			res.Start = j.Status.StartTime.Time
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			switch cond.Type {
			case batchv1.JobComplete:
				res.End = cond.LastTransitionTime.Time
				if j.Status.CompletionTime != nil {
					res.End = j.Status.CompletionTime.Time
				}
				return true, "complete", nil
			case batchv1.JobFailed:
				return false, "", fmt.Errorf("canary Job failed (%s: %s): the cluster cannot reach the canary destination; set EGRESS_CANARY_HOST/EGRESS_CANARY_PORT to a reachable one", cond.Reason, cond.Message)
			}
		}
		return false, fmt.Sprintf("active %d, failed %d", j.Status.Active, j.Status.Failed), nil
	})
	if err != nil {
		return res, err
	}
	logs, err := readPodLogs(ctx, c, job.Namespace, "app.kubernetes.io/name="+CanaryName)
	if err != nil {
		return res, err
	}
	res.Addresses = parseCanaryLog(logs)
	if len(res.Addresses) == 0 {
		return res, fmt.Errorf("canary Job completed but its log names no address it connected to:\n%s", logs)
	}
	return res, nil
}

// parseCanaryLog returns the addresses of the "connected <ip>" lines, sorted and unique.
func parseCanaryLog(log string) []string {
	seen := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		if ip, ok := strings.CutPrefix(strings.TrimSpace(line), "connected "); ok {
			if a, err := netip.ParseAddr(ip); err == nil {
				seen[a.String()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// resolverScript resolves every host every interval seconds and prints one line per answer:
// "<epoch seconds> <host> <address>", or "<epoch seconds> <host> -" when it does not resolve.
func resolverScript(interval time.Duration) string {
	return fmt.Sprintf(`while true; do
  for h in $EGRESS_HOSTS; do
    now=$(date +%%s)
    out=$(getent ahosts "$h" | awk '{print $1}' | sort -u)
    if [ -z "$out" ]; then echo "$now $h -"; else for a in $out; do echo "$now $h $a"; done; fi
  done
  sleep %d
done
`, int(interval.Seconds()))
}

// ResolverDeployment resolves the baseline's hostnames inside the cluster during the window,
// through the cluster's DNS like any workload, so that destination IPs get their names.
func ResolverDeployment(namespace, image string, hosts []string, interval time.Duration) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": ResolverName, "app.kubernetes.io/part-of": "egress-flow-matrix"}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: ResolverName, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: restrictedPod(),
					Containers: []corev1.Container{{
						Name:            "resolver",
						Image:           image,
						Command:         []string{"/bin/sh", "-c", resolverScript(interval)},
						Env:             []corev1.EnvVar{{Name: "EGRESS_HOSTS", Value: strings.Join(hosts, " ")}},
						SecurityContext: restrictedContainer(),
						Resources:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
					}},
				},
			},
		},
	}
}

// StartResolver creates the resolver unless it runs already and waits for its pod to run.
func StartResolver(ctx context.Context, c *Clients, t *Tracker, d *appsv1.Deployment, timeout time.Duration) error {
	if err := createTyped(ctx, c, t, d); err != nil {
		return err
	}
	return waitFor(ctx, c, "resolver "+d.Namespace+"/"+d.Name, 2*time.Second, timeout, func(ctx context.Context) (bool, string, error) {
		got, err := c.Kube.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return false, "reading: " + err.Error(), nil
		}
		return got.Status.ReadyReplicas >= 1, fmt.Sprintf("%d ready", got.Status.ReadyReplicas), nil
	})
}

// Resolution is one hostname → address answer valid over [From, To].
type Resolution struct {
	Address netip.Addr `json:"address"`
	Host    string     `json:"host"`
	From    time.Time  `json:"from"`
	To      time.Time  `json:"to"`
}

// ParseResolverLog folds resolver lines into time ranges per (host, address): consecutive
// answers up to two intervals apart merge, and each range lasts one interval past its last
// answer (the answer stands until the next round). Unresolved hosts are returned apart. A
// malformed line is an error naming it.
func ParseResolverLog(r io.Reader, interval time.Duration) (res []Resolution, unresolved []string, err error) {
	type key struct {
		host string
		addr netip.Addr
	}
	seen := map[key][]time.Time{}
	failed := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, nil, fmt.Errorf("resolver log line %d %q: want \"<epoch> <host> <address|->\"", n, line)
		}
		sec, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("resolver log line %d %q: time: %w", n, line, err)
		}
		if f[2] == "-" {
			failed[f[1]] = true
			continue
		}
		addr, err := netip.ParseAddr(f[2])
		if err != nil {
			return nil, nil, fmt.Errorf("resolver log line %d %q: address: %w", n, line, err)
		}
		k := key{strings.ToLower(strings.TrimSuffix(f[1], ".")), addr.Unmap()}
		seen[k] = append(seen[k], time.Unix(sec, 0).UTC())
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read resolver log: %w", err)
	}
	resolvedHosts := map[string]bool{}
	for k, times := range seen {
		resolvedHosts[k.host] = true
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		from, last := times[0], times[0]
		for _, tm := range times[1:] {
			if tm.Sub(last) > 2*interval {
				res = append(res, Resolution{Address: k.addr, Host: k.host, From: from, To: last.Add(interval)})
				from = tm
			}
			last = tm
		}
		res = append(res, Resolution{Address: k.addr, Host: k.host, From: from, To: last.Add(interval)})
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].Host != res[j].Host {
			return res[i].Host < res[j].Host
		}
		if res[i].Address != res[j].Address {
			return res[i].Address.Less(res[j].Address)
		}
		return res[i].From.Before(res[j].From)
	})
	for h := range failed {
		if !resolvedHosts[strings.ToLower(h)] {
			unresolved = append(unresolved, h)
		}
	}
	sort.Strings(unresolved)
	return res, unresolved, nil
}

// readPodLogs is podLogs; tests replace it, since the fake clientset's logs are fixed text.
var readPodLogs = podLogs

// podLogs concatenates the logs of the pods matching selector (all containers' current logs).
func podLogs(ctx context.Context, c *Clients, namespace, selector string) (string, error) {
	pods, err := c.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "", fmt.Errorf("list pods %s in %s: %w", selector, namespace, err)
	}
	var b strings.Builder
	for _, p := range pods.Items {
		data, err := c.Kube.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return "", fmt.Errorf("logs of pod %s/%s: %w", namespace, p.Name, err)
		}
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// ResolverLogs returns the resolver's output so far.
func ResolverLogs(ctx context.Context, c *Clients) (string, error) {
	return readPodLogs(ctx, c, SuiteNamespace, "app.kubernetes.io/name="+ResolverName)
}

// ResolvableHosts picks the hostnames the resolver can look up: exact names, not wildcards.
func ResolvableHosts(hosts []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if h == "" || strings.ContainsAny(h, "*?[ ") || seen[h] {
			continue
		}
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		seen[h] = true
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
