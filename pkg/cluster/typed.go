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
	)
	opts := metav1.CreateOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		kind, name = "Namespace", o.Name
		createFn = func() error { _, err := c.Kube.CoreV1().Namespaces().Create(ctx, o, opts); return err }
	case *corev1.ConfigMap:
		kind, ns, name = "ConfigMap", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.CoreV1().ConfigMaps(ns).Create(ctx, o, opts); return err }
	case *corev1.Secret:
		kind, ns, name = "Secret", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.CoreV1().Secrets(ns).Create(ctx, o, opts); return err }
	case *corev1.Service:
		kind, ns, name = "Service", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.CoreV1().Services(ns).Create(ctx, o, opts); return err }
	case *corev1.ServiceAccount:
		kind, ns, name = "ServiceAccount", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, o, opts); return err }
	case *corev1.PersistentVolumeClaim:
		kind, ns, name = "PersistentVolumeClaim", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, o, opts); return err }
	case *appsv1.Deployment:
		kind, ns, name = "Deployment", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, o, opts); return err }
	case *batchv1.Job:
		kind, ns, name = "Job", o.Namespace, o.Name
		createFn = func() error { _, err := c.Kube.BatchV1().Jobs(ns).Create(ctx, o, opts); return err }
	case *rbacv1.ClusterRole:
		kind, name = "ClusterRole", o.Name
		createFn = func() error { _, err := c.Kube.RbacV1().ClusterRoles().Create(ctx, o, opts); return err }
	case *rbacv1.ClusterRoleBinding:
		kind, name = "ClusterRoleBinding", o.Name
		createFn = func() error { _, err := c.Kube.RbacV1().ClusterRoleBindings().Create(ctx, o, opts); return err }
	default:
		return fmt.Errorf("createTyped: unsupported %T", obj)
	}
	created, err := typedCreated(c, kind, ns, name)
	if err != nil {
		return err
	}
	err = onTransient(createFn)
	if apierrors.IsAlreadyExists(err) {
		c.progress("  %s %s exists already: left as it is", kind, nsName(ns, name))
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s %s: %w", kind, nsName(ns, name), err)
	}
	t.add(created)
	c.progress("  created %s %s", kind, nsName(ns, name))
	return nil
}

// typedCreated is the record of a typed object: deleted, and (for namespaces) waited for,
// through the typed client. It is rebuilt from the kind alone so that a later process can
// clean up what an earlier one created (RestoreTracker).
func typedCreated(c *Clients, kind, ns, name string) (Created, error) {
	var (
		del      func(context.Context, metav1.DeleteOptions) error
		get      func(context.Context) error
		waitGone bool
	)
	switch kind {
	case "Namespace":
		api := c.Kube.CoreV1().Namespaces()
		del = func(ctx context.Context, o metav1.DeleteOptions) error { return api.Delete(ctx, name, o) }
		get = func(ctx context.Context) error { _, err := api.Get(ctx, name, metav1.GetOptions{}); return err }
		waitGone = true
	case "ConfigMap":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.CoreV1().ConfigMaps(ns).Delete(ctx, name, o)
		}
	case "Secret":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.CoreV1().Secrets(ns).Delete(ctx, name, o)
		}
	case "Service":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.CoreV1().Services(ns).Delete(ctx, name, o)
		}
	case "ServiceAccount":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.CoreV1().ServiceAccounts(ns).Delete(ctx, name, o)
		}
	case "PersistentVolumeClaim":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, o)
		}
	case "Deployment":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.AppsV1().Deployments(ns).Delete(ctx, name, o)
		}
	case "Job":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.BatchV1().Jobs(ns).Delete(ctx, name, o)
		}
	case "ClusterRole":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.RbacV1().ClusterRoles().Delete(ctx, name, o)
		}
	case "ClusterRoleBinding":
		del = func(ctx context.Context, o metav1.DeleteOptions) error {
			return c.Kube.RbacV1().ClusterRoleBindings().Delete(ctx, name, o)
		}
	default:
		return Created{}, fmt.Errorf("no typed client for kind %q (%s)", kind, nsName(ns, name))
	}
	bg := metav1.DeletePropagationBackground
	created := Created{Resource: kind, Namespace: ns, Name: name, WaitGone: waitGone,
		del: func(ctx context.Context) error { return del(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}) }}
	if get != nil {
		created.exists = func(ctx context.Context) (bool, error) {
			err := get(ctx)
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		}
	}
	return created, nil
}

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
