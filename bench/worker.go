package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"mailwave/testkit/kitfs"
	"mailwave/testkit/proc"
)

// workerStopTimeout is how long the worker gets to stop after SIGTERM: a
// little more than its own default shutdown timeout.
const workerStopTimeout = 40 * time.Second

// workerProcess is the mailwave worker running as a child process.
type workerProcess struct {
	cmd      *exec.Cmd
	log      *os.File
	exited   chan struct{} // closed once the process has exited
	stopping atomic.Bool
}

// Both halves' workers run with these limits, so the two are measured alike.
const (
	workerMaxActivities      = 200
	workerMaxLocalActivities = 200
	workerMaxWorkflowTasks   = 100
)

// mailwaveWorkerArgs runs the mailwave worker against the server at
// hostPort, on the layout's estate and outbox.
func mailwaveWorkerArgs(bin, hostPort string, d layout) []string {
	return []string{bin,
		"--temporal-address", hostPort,
		"--sim-dir", d.estate,
		"--outbox-dir", d.outbox,
		"--waves-dir", d.waves,
		"--sim-instant",
		"--log-level", "warn",
		"--max-activities", strconv.Itoa(workerMaxActivities),
		"--max-local-activities", strconv.Itoa(workerMaxLocalActivities),
		"--max-workflow-tasks", strconv.Itoa(workerMaxWorkflowTasks),
	}
}

// startWorker starts a worker process (argv[0] is the binary), its output in
// logPath. onEarlyExit is called if it exits before stop.
func startWorker(argv []string, logPath string, onEarlyExit func(error)) (*workerProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	w := &workerProcess{cmd: cmd, log: logFile, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(w.exited)
		if !w.stopping.Load() {
			onEarlyExit(fmt.Errorf("%s exited early (%v); the end of its log:\n%s", filepath.Base(argv[0]), err, kitfs.Tail(logPath, 10)))
		}
	}()
	return w, nil
}

// stop sends SIGTERM and waits for the worker to exit, killing it if it
// takes too long.
func (w *workerProcess) stop() {
	defer func() { _ = w.log.Close() }()
	w.stopping.Store(true)
	select {
	case <-w.exited:
		return
	default:
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		logf("stopping the worker: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(workerStopTimeout):
		logf("the worker did not stop within %s: killing it", workerStopTimeout)
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// peakRSSMB is the worker's peak resident set so far, in MB, so it must
// be read before the worker exits.
func (w *workerProcess) peakRSSMB() (float64, error) { return proc.VmHWM(w.cmd.Process.Pid) }
