// Package toolsearch ranks a gateway's tools against a natural-language
// query, so that a client can be shown two tools (find_tool and call_tool)
// instead of hundreds: search mode (docs/toolsearch.md).
//
// An [Index] is a lexical (BM25) index over a catalog's tools, immutable,
// rebuilt with each catalog while reusing the analysis of unchanged tools.
// A [Searcher] adds optional semantic ranking from an OpenAI-compatible
// embeddings endpoint: tool embeddings computed once per definition in the
// background and kept in a [Cache], the query embedded per search behind a
// timeout and a circuit breaker, falling back to lexical ranking. A [Mode]
// is what the frontend asks: the tools a client lists, and the answers of
// find_tool and call_tool.
//
// Searches take the caller's permissions as a predicate applied inside the
// ranking; this package makes no authorization decision and knows nothing
// about HTTP, sessions or identities.
package toolsearch
