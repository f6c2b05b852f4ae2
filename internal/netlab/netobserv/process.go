package netobserv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Process is one running program of the lab, its output in a log file of its directory.
type Process struct {
	Name    string // "flowlogs-pipeline" or "netobserv-ebpf-agent"
	LogPath string
	cmd     *exec.Cmd
	logf    *os.File
	done    chan struct{}
	waitErr error
	stopped sync.Once
	stopErr error
}

// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const StopTimeout = 5 * time.Second

var (
	registryMu sync.Mutex
	registry   = map[*Process]struct{}{}
)

// StopAll stops every process still running (the lab calls it on SIGINT/SIGTERM and at the
// end); it returns their errors joined.
func StopAll() error {
	registryMu.Lock()
	ps := make([]*Process, 0, len(registry))
	for p := range registry {
		ps = append(ps, p)
	}
	registryMu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Stop())
	}
	return errors.Join(errs...)
}

// spawner starts every child from one OS thread locked for the life of the program: the
// children get Pdeathsig=SIGKILL, which the kernel sends when the thread that forked them
// ends, so they die with us even on SIGKILL of the test binary. A thread of its own also
// keeps children out of any network namespace another goroutine's thread has entered.
var spawner = struct {
	once sync.Once
	reqs chan spawnReq
}{reqs: make(chan spawnReq)}

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the program
			for r := range spawner.reqs {
				r.res <- r.cmd.Start()
			}
		}()
	})
	res := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd, res}
	return <-res
}

// start runs bin with args and env (env replaces ours entirely) in its own process group,
// its stdout and stderr in dir/name.log.
func start(name, bin string, args, env []string, dir string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, logf: logf, done: make(chan struct{})}
	registryMu.Lock()
	registry[p] = struct{}{}
	registryMu.Unlock()
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after StopTimeout. An exit caused
// by our SIGTERM is not an error; an earlier exit of its own is.
func (p *Process) Stop() error {
	p.stopped.Do(func() {
		defer func() {
			registryMu.Lock()
			delete(registry, p)
			registryMu.Unlock()
		}()
		if exited, err := p.Exited(); exited {
			if err != nil {
				p.stopErr = fmt.Errorf("%s had exited before Stop: %w; its log:\n%s", p.Name, err, p.Log())
			}
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL) // what it may have left in its group
			return
		}
		_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.done
			p.stopErr = fmt.Errorf("%s ignored SIGTERM for %s: killed", p.Name, StopTimeout)
		}
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	})
	return p.stopErr
}

// LogTail is how much of the log Log returns.
const LogTail = 16 << 10

// Log returns the tail of the process's log, for failure messages.
func (p *Process) Log() string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", p.LogPath, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > LogTail {
		_, _ = f.Seek(st.Size()-LogTail, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
