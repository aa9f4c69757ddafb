// Package proc runs mailwave's own commands as child processes for tests
// and benchmarks that must kill them for real (SIGKILL) and start them
// again, and that measure their memory: a fleet of workers, a routing
// host's worker.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mailwave/testkit/kitfs"
)

// Build compiles one of mailwave's commands (e.g. "worker") with `go build`
// into dir, without the race detector, and returns the binary's path. It
// runs at the module root, so it works from any test's directory.
func Build(ctx context.Context, command, dir string) (string, error) {
	root, err := kitfs.ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, command)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./"+command)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./%s: %v\n%s", command, err, b)
	}
	return out, nil
}

// Proc is a child process that can be killed and started again with the
// same arguments, its output appended to one log file.
type Proc struct {
	Name string
	argv []string
	dir  string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
	peakMB float64 // the largest VmHWM read from any of its lives
}

// Options say how to run a process.
type Options struct {
	Name string   // for errors and the log's name
	Argv []string // the binary, then its arguments
	Dir  string   // its working directory (its private data), also holding its log
	Env  []string // added to the environment
}

// Start starts a process.
func Start(o Options) (*Proc, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	p := &Proc{Name: o.Name, argv: o.Argv, dir: o.Dir, env: o.Env, log: filepath.Join(o.Dir, o.Name+".log")}
	return p, p.Restart()
}

// Restart starts the process again after it exited (or for the first
// time).
func (p *Proc) Restart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s is still running", p.Name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a kill reaches nothing of the test's; and
	// it dies with its parent, so a test killed at its timeout leaves no
	// worker behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	p.starts++
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone: no cleanup, no
// checkpoint, as a host that loses power.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to grace for a clean exit, then kills.
func (p *Proc) Stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	p.notePeak()
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-exited
		return
	}
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Running says whether the process is alive.
func (p *Proc) Running() bool { return p.Pid() != 0 }

// Starts is how many times the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Pid is the running process's ID, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.exited:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// notePeak keeps the running process's peak RSS before it goes.
func (p *Proc) notePeak() {
	if mb, err := p.PeakRSSMB(); err == nil {
		p.mu.Lock()
		p.peakMB = max(p.peakMB, mb)
		p.mu.Unlock()
	}
}

// PeakRSSMB is the largest resident set of the process, in MB, over all its
// lives so far: VmHWM in /proc/PID/status (Linux), read while it runs.
func (p *Proc) PeakRSSMB() (float64, error) {
	pid := p.Pid()
	p.mu.Lock()
	peak := p.peakMB
	p.mu.Unlock()
	if pid == 0 {
		if peak > 0 {
			return peak, nil
		}
		return 0, fmt.Errorf("%s is not running", p.Name)
	}
	mb, err := VmHWM(pid)
	if err != nil {
		return 0, err
	}
	return max(peak, mb), nil
}

// VmHWM reads a process's peak resident set in MB from /proc.
func VmHWM(pid int) (float64, error) { return statusMB(pid, "VmHWM:") }

// VmRSS reads a process's resident set now, in MB, from /proc.
func VmRSS(pid int) (float64, error) { return statusMB(pid, "VmRSS:") }

// statusMB reads a line of /proc/PID/status given in kB, in MB.
func statusMB(pid int, field string) (float64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		// The line reads "VmHWM:     123456 kB".
		if f := strings.Fields(line); len(f) == 3 && f[0] == field && f[2] == "kB" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New(path + ": no " + field + " line")
}

// CPUSeconds is the user and system CPU time a process has used, from
// /proc/PID/stat (in clock ticks of 1/100 s, as Linux reports them).
func CPUSeconds(pid int) (float64, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command may hold spaces: the fields after it follow its ")".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0, errors.New(path + ": too few fields")
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return (utime + stime) / 100, nil
}

// LogTail is the end of the process's log, for an error.
func (p *Proc) LogTail(lines int) string { return kitfs.Tail(p.log, lines) }

// LogPath is the process's log file.
func (p *Proc) LogPath() string { return p.log }
