package netlab

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNetns runs fn on an OS thread switched into the named network namespace: sockets fn
// creates (listeners, dials) belong to that namespace for their whole life, whichever
// thread later serves them. The thread is switched back afterwards; if that fails it is
// left locked, so the Go runtime discards it rather than reuse it in the wrong namespace.
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: setns: %w", name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("netns: back from %s: %w (thread discarded)", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}
