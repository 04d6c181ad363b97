package lookup_test

import "os"

// mkdirTemp places the benchmark's store under $JETMESH_BENCH_DIR when set (a 10M-event
// stream takes several GB), else in the system's temporary directory.
func mkdirTemp() (string, error) {
	return os.MkdirTemp(os.Getenv("JETMESH_BENCH_DIR"), "lookup-bench-")
}
