package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the bench started and measures.
type child struct {
	name string
	url  string // http://127.0.0.1:<port>
	log  string // its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait, once done is closed
}

// children starts processes and stops them all at the end, newest first.
type children struct {
	dir  string
	list []*child
}

// start runs bin with args and env, its output in a log file of dir. The
// child is killed if this process dies first.
func (cs *children) start(name, addr, bin string, args, env []string) (*child, error) {
	logPath := filepath.Join(cs.dir, strings.NewReplacer(" ", "-", "/", "-").Replace(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, url: "http://" + addr, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	cs.list = append(cs.list, c)
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitHTTP polls GET path until it answers 200.
func (c *child) waitHTTP(ctx context.Context, path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(c.url + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited (%v) before answering; its log:\n%s", c.name, c.err, tail(c.log, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer GET %s within %s; its log:\n%s", c.name, path, within, tail(c.log, 20))
		}
	}
}

// stop asks the child to finish (SIGTERM), killing it after grace.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func (cs *children) stopAll() {
	for i := len(cs.list) - 1; i >= 0; i-- {
		cs.list[i].stop(15 * time.Second)
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// childEnv is this process's environment without Tollgate's settings (a
// developer's demo.env must not change what is measured), plus set.
func childEnv(set ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TOLLGATE_") || name == "DATABASE_URL" || name == "REDIS_URL" || name == "GOMAXPROCS" || name == "GOGC" || name == "GOMEMLIMIT" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, set...)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "  " + strings.Join(all[max(0, len(all)-lines):], "\n  ")
}

// Process figures from /proc. CPU time is utime+stime of all the process's
// threads, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
const tick = 10 * time.Millisecond

func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields resume after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * tick, nil
}

// resetPeakRSS makes VmHWM start again from the current RSS, so that each
// cell reports its own peak (Linux 4.0+: "5" > clear_refs).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// memoryKB reads a field of /proc/<pid>/status such as VmHWM or VmRSS.
func memoryKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}
