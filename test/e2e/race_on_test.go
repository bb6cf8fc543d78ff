//go:build race

package e2e

// raceBuild reports whether the tests run with the race detector; the
// binaries under test are then built with it too.
const raceBuild = true
