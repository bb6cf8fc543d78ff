// Package docs holds tests that check vmcp's documentation against the
// code: the package map of design.md against `go list`. (The documents'
// `$ vmcp …` examples are run by TestDocExamples in cmd/vmcp.) It has no
// code of its own.
package docs
