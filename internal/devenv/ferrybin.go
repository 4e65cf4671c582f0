package devenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// FerryBinary builds the ferry command once per process and returns its
// path, for tests that run executors as processes (to kill them with
// SIGKILL, or to run several of a shard). The binary lives in a temporary
// directory that outlives the tests of the process.
var FerryBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ferry")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferry-pipelines/ferry/cmd/ferry").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/ferry: %v\n%s", err, out)
	}
	return bin, nil
})

// FerryCommand is the ferry command with args, built by FerryBinary; its
// process is killed when the test process dies.
func FerryCommand(args ...string) (*exec.Cmd, error) {
	bin, err := FerryBinary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	dieWithParent(cmd)
	return cmd, nil
}
