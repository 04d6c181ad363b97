package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jetmesh/jetmesh/server"
)

// clusterConfigs turns one server's configuration into n: itself for 1; for 3, nodes on
// loopback routes with their own data directories and R3 streams.
func clusterConfigs(base server.Config, n int) ([]server.Config, error) {
	if n == 1 {
		return []server.Config{base}, nil
	}
	routes := make([]string, n)
	listens := make([]string, n)
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		listens[i] = addr
		routes[i] = "nats-route://" + addr
	}
	out := make([]server.Config, n)
	for i := range n {
		c := base
		c.Name = fmt.Sprintf("bench-%d", i+1)
		c.DataDir = filepath.Join(base.DataDir, c.Name)
		c.Cluster = server.ClusterConfig{Name: "bench", Listen: listens[i], Routes: routes}
		c.Streams.Replicas = 3
		out[i] = c
	}
	return out, nil
}

// waitReady waits until every node answers /readyz: the cluster has formed and the
// streams and buckets exist.
func waitReady(ctx context.Context, servers []*server.Server) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, srv := range servers {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.HTTPAddr()+"/readyz", nil)
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return errors.New("the cluster did not become ready within 2 minutes")
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// freeAddr is a loopback address with a port free now, for a listener that another
// process or a server's own configuration opens later.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
