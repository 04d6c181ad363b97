package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/pemfile"
)

// binary is the jetmesh binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jetmesh-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "jetmesh")
	build := exec.Command("go", "build", "-o", binary, "../cmd/jetmesh")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building jetmesh:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running jetmesh process and its output.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan error
}

// startProc runs the jetmesh binary with args until the test ends.
func startProc(t *testing.T, name string, args ...string) proc {
	t.Helper()
	p := proc{t: t, name: name, log: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not die after SIGKILL", p.name)
	}
}

// serverProc is a `jetmesh server` process.
type serverProc struct {
	proc
	dataDir  string
	natsAddr string
	httpAddr string
	// tlsCA is set when the server runs with TLS: the CA its certificate is signed by.
	tlsCA string
}

func (s *serverProc) natsURL() string { return "nats://" + s.natsAddr }

func (s *serverProc) httpURL() string {
	if s.tlsCA != "" {
		return "https://" + s.httpAddr
	}
	return "http://" + s.httpAddr
}

// httpClient reaches the server's HTTP port, trusting its CA when it has TLS.
func (s *serverProc) httpClient() *http.Client {
	if s.tlsCA == "" {
		return http.DefaultClient
	}
	pool, err := pemfile.CertPool(s.tlsCA)
	if err != nil {
		s.t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// anyType starts a server that stores events of any type unvalidated: for tests about
// transport and durability, not schemas (TestSchemas covers validation).
const anyType = "--allow-unknown-types"

// startServer runs `jetmesh server` over dataDir on fresh ports and waits for /readyz.
func startServer(t *testing.T, dataDir string, extra ...string) *serverProc {
	t.Helper()
	s := launchServer(t, dataDir, extra...)
	s.waitReady(20 * time.Second)
	return s
}

// launchServer starts `jetmesh server` over dataDir on fresh ports without waiting.
func launchServer(t *testing.T, dataDir string, extra ...string) *serverProc {
	t.Helper()
	return launchServerOn(t, dataDir, freeAddr(t), freeAddr(t), extra...)
}

// restart starts s again on the same data directory and addresses (after kill), so
// clients that reconnect find it, and waits for it to be ready.
func (s *serverProc) restart(extra ...string) *serverProc {
	s.t.Helper()
	n := launchServerOn(s.t, s.dataDir, s.natsAddr, s.httpAddr, extra...)
	n.waitReady(20 * time.Second)
	return n
}

// launchServerOn starts `jetmesh server` over dataDir on the given addresses.
func launchServerOn(t *testing.T, dataDir, natsAddr, httpAddr string, extra ...string) *serverProc {
	t.Helper()
	args := append([]string{"server", "--data", dataDir, "--nats", natsAddr, "--http", httpAddr}, extra...)
	s := &serverProc{proc: startProc(t, "server", args...), dataDir: dataDir, natsAddr: natsAddr, httpAddr: httpAddr}
	for i, a := range extra {
		if a == "--tls-ca" && i+1 < len(extra) && slices.Contains(extra, "--tls-cert") {
			s.tlsCA = extra[i+1]
		}
	}
	return s
}

// waitReady waits until /readyz answers 200.
func (s *serverProc) waitReady(timeout time.Duration) {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := s.httpClient().Get(s.httpURL() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("server exited before ready: %v\n%s", err, s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready in %s:\n%s", timeout, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli runs one jetmesh CLI command against s and returns stdout, stderr and the exit code.
func (s *serverProc) cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "JETMESH_SERVER="+s.natsURL())
	if s.tlsCA != "" {
		cmd.Env = append(cmd.Env, "JETMESH_TLS_CA="+s.tlsCA)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("jetmesh %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}
