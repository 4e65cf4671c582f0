//go:build race

package mirror_test

// raceEnabled: the race detector slows everything several times over, so
// latency is asserted in the run without it (make test runs TestIsolation
// both ways).
const raceEnabled = true
