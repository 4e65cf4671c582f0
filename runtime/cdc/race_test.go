//go:build race

package cdc

// raceEnabled: the race detector slows everything several times over, so
// timing assertions loosen.
const raceEnabled = true
