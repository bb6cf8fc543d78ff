// Package docs holds the tests that check vmcp's documentation against the
// code: the package map of design.md against `go list`, and the examples of
// the other documents. It has no code of its own.
package docs
