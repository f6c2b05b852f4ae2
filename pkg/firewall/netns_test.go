package firewall

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var netnsSeq atomic.Int32

// newNetns creates a named network namespace for the test and deletes it on cleanup, even
// when the test fails. The test is skipped only when the machine forbids namespaces.
func newNetns(t *testing.T, tag string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN): run as root, as CI does")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip not found: install iproute2: %v", err)
	}
	removeStaleNetns(t)
	name := fmt.Sprintf("%s%d-%d-%s", netnsPrefix, os.Getpid(), netnsSeq.Add(1), tag)
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "Permission denied") {
			t.Skipf("this machine forbids network namespaces (ip netns add: %s)", strings.TrimSpace(string(out)))
		}
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	inNetns(t, name, "ip", "link", "set", "lo", "up")
	return name
}

const netnsPrefix = "etxfw-"

var sweepOnce sync.Once

// removeStaleNetns deletes namespaces this test created in an earlier run that was killed
// before its cleanups ran (e.g. by -timeout): they are named after a process that is gone.
func removeStaleNetns(t *testing.T) {
	sweepOnce.Do(func() {
		entries, err := os.ReadDir("/run/netns")
		if err != nil {
			return
		}
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
			if !ok {
				continue
			}
			pid, _, _ := strings.Cut(rest, "-")
			if _, err := os.Stat("/proc/" + pid); err == nil {
				continue // still running (maybe a parallel test binary)
			}
			if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
				t.Logf("removing stale namespace %s: %v: %s", e.Name(), err, out)
			}
		}
	})
}

// inNetns runs a command inside a namespace and fails the test on error.
func inNetns(t *testing.T, ns string, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

// enterNetns moves the calling goroutine, locked to its OS thread, into a namespace. The
// thread is never unlocked, so Go discards it when the goroutine ends and no other goroutine
// ever runs in the namespace by accident. Sockets keep the namespace they were created in.
func enterNetns(ns string) error {
	runtime.LockOSThread()
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	return nil
}

// inNS runs fn on a fresh goroutine inside the namespace and returns its result.
func inNS[T any](ns string, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		if err := enterNetns(ns); err != nil {
			ch <- result{err: err}
			return
		}
		v, err := fn()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// listen opens a TCP listener or UDP socket in the namespace.
func listen(ns, network, addr string) (any, error) {
	return inNS(ns, func() (any, error) {
		if strings.HasPrefix(network, "udp") {
			return net.ListenPacket(network, addr)
		}
		return net.Listen(network, addr)
	})
}

var errNoAnswer = errors.New("no answer")
