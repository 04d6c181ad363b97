package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/presence"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/sidecar"
	"github.com/nats-io/nats.go"
)

// benchSidecar is one sidecar of the bench service, in this process or a child process.
type benchSidecar interface {
	status(ctx context.Context) (sidecar.Status, error)
	// peakRSSMiB is the process's highest resident memory so far; 0 in this process,
	// where the server's memory cannot be told apart.
	peakRSSMiB() float64
	// cpuSeconds is the CPU time the process has used so far; 0 in this process.
	cpuSeconds() float64
}

type inProcess struct{ s *sidecar.Sidecar }

func (p inProcess) status(context.Context) (sidecar.Status, error) { return p.s.Status(), nil }
func (p inProcess) peakRSSMiB() float64                            { return 0 }
func (p inProcess) cpuSeconds() float64                            { return 0 }

// childProcess is `jetmesh sidecar` run from Config.SidecarExec.
type childProcess struct {
	cmd    *exec.Cmd
	listen string
	out    *bytes.Buffer
}

func (p *childProcess) status(ctx context.Context) (sidecar.Status, error) {
	var st sidecar.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.listen+"/readyz", nil)
	if err != nil {
		return st, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	return st, json.NewDecoder(res.Body).Decode(&st)
}

// peakRSSMiB reads VmHWM from /proc (Linux); 0 where there is none.
func (p *childProcess) peakRSSMiB() float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds reads utime + stime from /proc (Linux, in clock ticks of 1/100 s); 0 where
// there is none.
func (p *childProcess) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which ends at the last ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

// startSidecar starts one sidecar of the bench service, stopped when ctx ends.
func (e *env) startSidecar(ctx context.Context, wg *sync.WaitGroup, creds string, tlsOpts []nats.Option) (benchSidecar, error) {
	if e.cfg.SidecarExec == "" {
		sc := sidecar.DefaultConfig()
		sc.Service, sc.Handler, sc.Listen, sc.NATSURL = "bench", e.sinkURL, "127.0.0.1:0", e.srv.NATSURL()
		sc.Creds, sc.TLSOptions = creds, tlsOpts
		side, err := sidecar.New(sc, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, err
		}
		wg.Go(func() { _ = side.Run(ctx) })
		return inProcess{side}, nil
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &childProcess{listen: listen, out: &bytes.Buffer{}}
	p.cmd = exec.Command(e.cfg.SidecarExec, "sidecar", "--server", e.srv.NATSURL(), "--service", "bench",
		"--handler", e.sinkURL, "--listen", listen, "--log-level", "warn")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the sidecar process: %w", err)
	}
	wg.Go(func() {
		<-ctx.Done()
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
	return p, nil
}

// waitSidecars waits until every sidecar is ready and has bound ruleCount rules, and,
// with two replicas, until each sees the other in the heartbeats (an orderBy rule's
// partitions are split between the replicas each one sees).
func (e *env) waitSidecars(ctx context.Context, ruleCount int) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, side := range e.sidecars {
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := side.status(cctx)
			cancel()
			bound := 0
			for _, state := range st.Rules {
				if state == "bound" {
					bound++
				}
			}
			if err == nil && st.Ready && bound == ruleCount {
				break
			}
			if time.Now().After(deadline) {
				if p, ok := side.(*childProcess); ok {
					return fmt.Errorf("the sidecar did not bind the bench rules within 30s (%v %+v):\n%s", err, st, p.out)
				}
				return fmt.Errorf("the sidecar did not bind the bench rules within 30s (%+v)", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(e.sidecars) < 2 {
		return nil
	}
	for deadline := time.Now().Add(6 * bus.PresenceInterval); ; time.Sleep(100 * time.Millisecond) {
		_, sidecars, err := presence.Read(ctx, e.js)
		seeing := 0
		for _, sc := range sidecars {
			if sc.Service == "bench" && sc.Replicas[orderedRule] == len(e.sidecars) {
				seeing++
			}
		}
		if err == nil && seeing == len(e.sidecars) {
			// The replica that held every partition hands half over once it sees the other:
			// within a pull expiry and an ownership check. Measure after that.
			time.Sleep(rules.PartitionPullExpiry + time.Second)
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the sidecar replicas did not see each other in the heartbeats within 30s")
		}
	}
}

// sidecarCPU is the CPU time the sidecar processes have used so far.
func (e *env) sidecarCPU() float64 {
	total := 0.0
	for _, side := range e.sidecars {
		total += side.cpuSeconds()
	}
	return total
}

// sidecarPeakRSS is the highest peak resident memory among the sidecar processes.
func (e *env) sidecarPeakRSS() float64 {
	peak := 0.0
	for _, side := range e.sidecars {
		peak = max(peak, side.peakRSSMiB())
	}
	return peak
}
