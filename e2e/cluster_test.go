package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestClusterSurvivesNodeLoss runs three jetmesh servers as one JetStream cluster with
// replicated streams, SIGKILLs the node taking the publish load, and checks that another
// node takes publishes within seconds and that every event accepted before the kill is
// still stored exactly once.
func TestClusterSurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	routes := make([]string, 3)
	clusterAddrs := make([]string, 3)
	for i := range routes {
		clusterAddrs[i] = freeAddr(t)
		routes[i] = "nats-route://" + clusterAddrs[i]
	}
	nodes := make([]*serverProc, 3)
	for i := range nodes {
		nodes[i] = launchServer(t, t.TempDir(), anyType, "--name", fmt.Sprintf("n%d", i+1), "--cluster", clusterAddrs[i],
			"--cluster-name", "jetmesh-e2e", "--routes", strings.Join(routes, ","), "--replicas", "3", "--log-level", "debug")
	}
	for _, n := range nodes {
		n.waitReady(60 * time.Second)
	}
	out, _, code := nodes[2].cli(t, "", "streams", "info", "EVENTS")
	if code != 0 || !strings.Contains(out, "Replicas          3") {
		t.Fatalf("EVENTS is not replicated: exit %d\n%s", code, out)
	}

	accepted := publishUnderLoad(t, nodes[0], func() {
		time.Sleep(time.Second)
		nodes[0].kill()
	})

	// Another node must take publishes again once the stream has a new leader.
	began := time.Now()
	for attempt := 0; ; attempt++ {
		code, _, err := post(t, nodes[1].httpURL(), "application/cloudevents+json", nil, ce("after-failover", "orders.created", "{}"))
		if err == nil && code == 200 {
			break
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("no publish accepted 30s after losing a node (last: %d %v)\n%s", code, err, nodes[1].log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("publishes accepted again %v after the node was killed", time.Since(began).Round(time.Millisecond))
	accepted["after-failover"] = true

	t.Cleanup(func() {
		if t.Failed() {
			for i, n := range nodes[1:] {
				for _, line := range strings.Split(n.log.String(), "\n") {
					if strings.Contains(strings.ToLower(line), "leader") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") && !strings.Contains(line, "connect to route") {
						t.Logf("n%d: %s", i+2, line)
					}
				}
			}
		}
	})
	stored := storedIDs(t, nodes[2])
	for id := range accepted {
		if stored[id] != 1 {
			t.Errorf("accepted event %s stored %d times after losing a node", id, stored[id])
		}
	}

	// The read commands keep working on the degraded cluster.
	out, errOut, code := nodes[2].cli(t, "", "tail", "load.>", "--all", "-n", "1")
	if code != 0 || !strings.Contains(out, "load.tick") {
		t.Errorf("tail on the degraded cluster: exit %d %q %q", code, out, errOut)
	} else if errOut != "" {
		t.Logf("tail on the degraded cluster said: %s", strings.TrimSpace(errOut))
	}
	if _, errOut, code := nodes[2].cli(t, "", "dlq", "ls"); code != 0 {
		t.Errorf("dlq ls on the degraded cluster: exit %d %q", code, errOut)
	}
}
