package cluster

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// createTyped creates a core object through the typed client unless it exists, and records
// it with delete and existence checks through the same client. AlreadyExists is not ours.
func createTyped(ctx context.Context, c *Clients, t *Tracker, obj runtime.Object) error {
	var (
		kind, ns, name string
		createFn       func() error
		del            func(context.Context) error
		get            func(context.Context) error
		waitGone       bool
	)
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	switch o := obj.(type) {
	case *corev1.Namespace:
		kind, name, waitGone = "Namespace", o.Name, true
		api := c.Kube.CoreV1().Namespaces()
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
		get = func(ctx context.Context) error { _, err := api.Get(ctx, name, metav1.GetOptions{}); return err }
	case *corev1.ConfigMap:
		kind, ns, name = "ConfigMap", o.Namespace, o.Name
		api := c.Kube.CoreV1().ConfigMaps(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *corev1.Secret:
		kind, ns, name = "Secret", o.Namespace, o.Name
		api := c.Kube.CoreV1().Secrets(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *corev1.Service:
		kind, ns, name = "Service", o.Namespace, o.Name
		api := c.Kube.CoreV1().Services(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *corev1.ServiceAccount:
		kind, ns, name = "ServiceAccount", o.Namespace, o.Name
		api := c.Kube.CoreV1().ServiceAccounts(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *corev1.PersistentVolumeClaim:
		kind, ns, name = "PersistentVolumeClaim", o.Namespace, o.Name
		api := c.Kube.CoreV1().PersistentVolumeClaims(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *appsv1.Deployment:
		kind, ns, name = "Deployment", o.Namespace, o.Name
		api := c.Kube.AppsV1().Deployments(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *batchv1.Job:
		kind, ns, name = "Job", o.Namespace, o.Name
		api := c.Kube.BatchV1().Jobs(ns)
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *rbacv1.ClusterRole:
		kind, name = "ClusterRole", o.Name
		api := c.Kube.RbacV1().ClusterRoles()
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	case *rbacv1.ClusterRoleBinding:
		kind, name = "ClusterRoleBinding", o.Name
		api := c.Kube.RbacV1().ClusterRoleBindings()
		createFn = func() error { _, err := api.Create(ctx, o, metav1.CreateOptions{}); return err }
		del = func(ctx context.Context) error { return api.Delete(ctx, name, opts) }
	default:
		return fmt.Errorf("createTyped: unsupported %T", obj)
	}
	err := onTransient(createFn)
	if apierrors.IsAlreadyExists(err) {
		c.progress("  %s %s exists already: left as it is", kind, nsName(ns, name))
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s %s: %w", kind, nsName(ns, name), err)
	}
	created := Created{Resource: kind, Namespace: ns, Name: name, WaitGone: waitGone, del: del}
	if get != nil {
		created.exists = func(ctx context.Context) (bool, error) {
			err := get(ctx)
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		}
	}
	t.add(created)
	c.progress("  created %s %s", kind, nsName(ns, name))
	return nil
}

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
