//go:build !linux

package devenv

import "os/exec"

// dieWithParent is Linux's only: elsewhere a killed test may leave its
// executors running.
func dieWithParent(*exec.Cmd) {}
