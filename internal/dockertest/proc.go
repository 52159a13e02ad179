package dockertest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is an engine's long-running process (dockerd, Podman's service),
// its output appended to a log file.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
}

// start starts cmd with its output appended to logPath.
func (p *proc) start(cmd *exec.Cmd, logPath string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return nil
}

// stop ends the process: SIGTERM, then SIGKILL after 20s.
func (p *proc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
