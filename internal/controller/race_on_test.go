//go:build race

package controller_test

// raceBuild makes the tests build vmcp with the race detector too.
const raceBuild = true
