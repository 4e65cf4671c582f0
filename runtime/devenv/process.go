package devenv

import (
	"fmt"
	"os/exec"
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
