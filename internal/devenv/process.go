package devenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a server that devenv started in its own process group.
type process struct {
	name string // for messages: "mariadbd", "postgres"

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// started records a started command; wait runs after it exits.
func (p *process) started(cmd *exec.Cmd, wait func()) chan struct{} {
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if wait != nil {
			wait()
		}
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return done
}

// running reports whether the process is alive.
func (p *process) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// signal sends sig (SIGKILL to the whole process group, so a server's
// children die with it) and waits up to wait for the exit; past that it
// kills the group.
func (p *process) signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	pid := cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, sig)
	} else {
		_ = cmd.Process.Signal(sig)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within %s after %v; killed", p.name, wait, sig)
	}
}

// cpuTime is the process's CPU time so far, user and system, read from
// /proc/<pid>/stat (Linux; clock ticks of 1/100 s).
func (p *process) cpuTime() (time.Duration, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0, fmt.Errorf("%s is not running", p.name)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// CPUTime is the server's CPU time so far, for benchmarks that say where
// a run's time went.
func (m *MariaDB) CPUTime() (time.Duration, error) { return m.proc.cpuTime() }
