package netobserv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CheckCapabilities says whether the real agent can run here: root, the bpf() syscall
// (a map and a SchedCLS program, what the agent loads for TCX), BTF of the kernel, and the
// `ip` command for named network namespaces. The error names what is missing.
func CheckCapabilities() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("the eBPF agent needs Linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root (euid %d): the eBPF agent and network namespaces need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)", os.Geteuid())
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("no kernel BTF (/sys/kernel/btf/vmlinux: %v): the agent's CO-RE programs need CONFIG_DEBUG_INFO_BTF", err)
	}
	if err := bpfMap(); err != nil {
		return fmt.Errorf("bpf(BPF_MAP_CREATE) refused: %w; the agent needs the bpf() syscall (CAP_BPF, not blocked by seccomp, unprivileged_bpf irrelevant as root)", err)
	}
	if err := bpfSchedCLS(); err != nil {
		return fmt.Errorf("bpf(BPF_PROG_LOAD) of a SchedCLS program refused: %w; the agent's TCX programs need it", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no `ip` command (iproute2): the lab's network namespaces need it; fix: apt-get install iproute2")
	}
	return nil
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func bpfMap() error {
	attr := struct{ mapType, keySize, valueSize, maxEntries uint32 }{unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1}
	fd, err := bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func bpfSchedCLS() error {
	// r0 = 0; exit
	insns := [2]uint64{0x00000000000000b7, 0x0000000000000095}
	license := []byte("GPL\x00")
	attr := struct {
		progType, insnCnt uint32
		insns, license    uint64
	}{unix.BPF_PROG_TYPE_SCHED_CLS, 2, uint64(uintptr(unsafe.Pointer(&insns[0]))), uint64(uintptr(unsafe.Pointer(&license[0])))}
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&insns)
	runtime.KeepAlive(license)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}
