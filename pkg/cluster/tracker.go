package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Created is one object the suite created, to be deleted at cleanup.
type Created struct {
	GVR       schema.GroupVersionResource `json:"-"`
	Resource  string                      `json:"resource"`
	Namespace string                      `json:"namespace,omitempty"`
	Name      string                      `json:"name"`
	// WaitGone makes cleanup wait for the object to disappear before deleting what was created
	// before it (a FlowCollector must be gone before its operator is removed).
	WaitGone bool `json:"-"`

	// del deletes the object (nil: through the dynamic client); exists reports whether it is
	// still there. Typed objects are deleted through the typed client that created them.
	del    func(context.Context) error
	exists func(context.Context) (bool, error)
}

func (c Created) String() string {
	if c.Namespace == "" {
		return c.Resource + "/" + c.Name
	}
	return c.Resource + " " + c.Namespace + "/" + c.Name
}

// Tracker records what the suite created, in order, so that cleanup removes exactly that and
// nothing that was there before.
type Tracker struct {
	mu      sync.Mutex
	created []Created
}

// Add records a creation made through the dynamic client.
func (t *Tracker) Add(gvr schema.GroupVersionResource, namespace, name string, waitGone bool) {
	t.add(Created{GVR: gvr, Resource: gvr.Resource, Namespace: namespace, Name: name, WaitGone: waitGone})
}

func (t *Tracker) add(c Created) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.created = append(t.created, c)
}

// Created lists what was created, oldest first.
func (t *Tracker) Created() []Created {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Created(nil), t.created...)
}

// Cleanup deletes what was created, newest first. It keeps going after an error and returns
// all of them; the CSV an OLM Subscription installed is deleted with it (see DeleteSubscription).
func (t *Tracker) Cleanup(ctx context.Context, c *Clients, timeout time.Duration) error {
	objs := t.Created()
	var errs []error
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		c.progress("cleanup: deleting %s", o)
		var err error
		switch {
		case o.del != nil:
			err = o.del(ctx)
			if apierrors.IsNotFound(err) {
				err = nil
			}
		case o.GVR == gvrSubscription:
			err = deleteSubscriptionAndCSV(ctx, c, o.Namespace, o.Name)
		default:
			err = deleteObject(ctx, c, o)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", o, err))
			continue
		}
		if o.WaitGone {
			err := wait.PollUntilContextTimeout(ctx, pollInterval(2*time.Second), timeout, true, func(ctx context.Context) (bool, error) {
				if o.exists != nil {
					there, err := o.exists(ctx)
					return err == nil && !there, nil
				}
				_, err := c.Dynamic.Resource(o.GVR).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s still present %s after delete: %w", o, timeout, err))
			}
		}
	}
	return errors.Join(errs...)
}

func deleteObject(ctx context.Context, c *Clients, o Created) error {
	policy := metav1.DeletePropagationForeground
	err := c.Dynamic.Resource(o.GVR).Namespace(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
