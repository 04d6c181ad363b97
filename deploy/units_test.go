package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestSystemdUnits checks the units with systemd-analyze verify, in a root holding this
// machine's system units and a freshly built jetmesh at /usr/local/bin/jetmesh (the
// path the units run). Any warning fails: systemd ignores a misspelt key with one.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing: ./scripts/test-deps.sh installs Debian's systemd")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "usr/local/bin/jetmesh")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/jetmesh").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	system := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.MkdirAll(filepath.Dir(system), 0o755); err != nil {
		t.Fatal(err)
	}
	host := "/usr/lib/systemd/system"
	if _, err := os.Stat(host); err != nil {
		host = "/lib/systemd/system"
	}
	if out, err := exec.Command("cp", "-r", host, system).CombinedOutput(); err != nil {
		t.Fatalf("copying the system units: %v\n%s", err, out)
	}
	units := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(units, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"jetmesh.service", "jetmesh-sidecar@.service"} {
		raw, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(units, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("systemd-analyze", "--root="+root, "verify", "jetmesh.service", "jetmesh-sidecar@billing.service")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
	// The hardening and the drain this file promises.
	unit, _ := os.ReadFile("systemd/jetmesh.service")
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=jetmesh", "KillSignal=SIGTERM", "Restart=on-failure"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("jetmesh.service lacks %s", want)
		}
	}
}

// TestComposeLoads loads the compose stack with the compose-spec library (what docker
// compose itself uses), both files: the services, their images and the files they mount.
func TestComposeLoads(t *testing.T) {
	for _, files := range [][]string{{"compose/compose.yaml"}, {"compose/compose.yaml", "compose/compose.single.yaml"}} {
		opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory("compose"), cli.WithName("jetmesh"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := opts.LoadProject(context.Background())
		if err != nil {
			t.Fatalf("%v: %v", files, err)
		}
		names := slices.Sorted(maps.Keys(p.Services))
		want := []string{"billing", "billing-sidecar", "grafana", "jetmesh-1", "jetmesh-2", "jetmesh-3", "prometheus", "setup"}
		if !slices.Equal(names, want) {
			t.Errorf("%v: services %v, want %v", files, names, want)
		}
		for _, svc := range p.Services {
			for _, v := range svc.Volumes {
				if v.Type != "bind" {
					continue
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which is not there: %v", svc.Name, v.Source, err)
				}
			}
		}
		node := p.Services["jetmesh-1"]
		single := len(files) == 2
		if got := slices.Contains(node.Command, "--replicas=1"); got != single {
			t.Errorf("%v: jetmesh-1 %v", files, node.Command)
		}
	}
}

// TestKubernetesSidecarExample decodes the native-sidecar example strictly into its API
// type and checks what makes it a native sidecar.
func TestKubernetesSidecarExample(t *testing.T) {
	raw, err := os.ReadFile("kubernetes/billing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&dep); err != nil {
		t.Fatalf("the example does not decode strictly into a Deployment: %v", err)
	}
	spec := dep.Spec.Template.Spec
	if len(spec.InitContainers) != 1 {
		t.Fatalf("%d init containers", len(spec.InitContainers))
	}
	sc := spec.InitContainers[0]
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("the sidecar is not a native sidecar (restartPolicy: Always)")
	}
	if sc.StartupProbe == nil || sc.StartupProbe.HTTPGet.Path != "/startupz" {
		t.Error("the app does not wait for the sidecar's startup probe on /startupz")
	}
	if flagValue(sc.Args, "--app-health") == "" || envValue(sc.Env, "JETMESH_CREDS") == "" {
		t.Errorf("sidecar args %v", sc.Args)
	}
}
