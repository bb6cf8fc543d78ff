package frontend

import (
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// encodedSchemas returns t with its input and output schemas encoded as
// JSON once (json.RawMessage), or t itself if there is nothing to encode.
//
// Schemas arrive from backends as generic maps; encoding a map walks it by
// reflection and sorts its keys, on every tools/list. Encoded once per
// catalog, a list of 1,000 tools costs a fraction of that (see
// docs/benchmarks.md). The encoding is deterministic (sorted keys), so an
// unchanged tool compares equal across rebuilds.
func encodedSchemas(t *mcp.Tool) *mcp.Tool {
	in, inOK := encodeSchema(t.InputSchema)
	out, outOK := encodeSchema(t.OutputSchema)
	if !inOK && !outOK {
		return t
	}
	c := *t
	if inOK {
		c.InputSchema = in
	}
	if outOK {
		c.OutputSchema = out
	}
	return &c
}

func encodeSchema(s any) (json.RawMessage, bool) {
	switch s.(type) {
	case nil, json.RawMessage:
		return nil, false
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, false // left as it is; the SDK reports it
	}
	return b, true
}
