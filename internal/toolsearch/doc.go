// Package toolsearch ranks a gateway's tools against a natural-language
// query, so that a client can be shown two tools (search and call) instead
// of hundreds.
package toolsearch
