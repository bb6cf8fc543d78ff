package wire

import (
	"errors"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sjson "github.com/segmentio/encoding/json"
)

// vmcp's guard of the go-sdk's reads (backend/guard.go) must know that the
// go-sdk will decode a backend's message before handing it over: a message
// the SDK cannot decode ends its connection. jsonrpc.DecodeMessage, the SDK's own decoder, would tell, but
// it copies the message (a result of many megabytes, once more, through a
// decoder whose buffer grows by doubling). Check answers the same
// question without copying: the same parser (segmentio's, case-sensitive),
// the same envelope, the same nesting bound and the same checks of the
// version and the id. FuzzCheck compares the two.

// envelope is the go-sdk's wire form of a message (jsonrpc2.wireDecode).
type envelope struct {
	VersionTag string             `json:"jsonrpc"`
	ID         any                `json:"id,omitempty"`
	Method     sjson.RawMessage   `json:"method"`
	Params     sjson.RawMessage   `json:"params,omitempty"`
	Result     sjson.RawMessage   `json:"result,omitempty"`
	Error      *envelopeWireError `json:"error,omitempty"`
}

type envelopeWireError struct {
	Code    int64            `json:"code"`
	Message string           `json:"message"`
	Data    sjson.RawMessage `json:"data,omitempty"`
}

// maxMessageDepth is the go-sdk's bound on a message's nesting.
const maxMessageDepth = 1000

var errNotJSONRPC = errors.New("not a JSON-RPC message")

// Check reports whether the go-sdk decodes data as a JSON-RPC
// message, and returns its id and whether it is a response.
func Check(data []byte) (id jsonrpc.ID, response bool, err error) {
	if tooDeep(data, maxMessageDepth) {
		return id, false, errNotJSONRPC
	}
	var m envelope
	if _, err := sjson.Parse(data, &m, sjson.DontMatchCaseInsensitiveStructFields|sjson.DontCopyRawMessage|sjson.DontCopyString); err != nil {
		return id, false, errNotJSONRPC
	}
	if m.VersionTag != "2.0" {
		return id, false, errNotJSONRPC
	}
	if id, err = jsonrpc.MakeID(m.ID); err != nil {
		return id, false, errNotJSONRPC
	}
	if len(m.Method) > 0 {
		var method string
		if _, err := sjson.Parse(m.Method, &method, sjson.DontCopyString); err != nil {
			return id, false, errNotJSONRPC
		}
		return id, false, nil
	}
	if !id.IsValid() {
		return id, false, errNotJSONRPC
	}
	return id, true, nil
}

// tooDeep reports whether data nests objects and arrays deeper than max,
// as the go-sdk counts (strings skipped).
func tooDeep(data []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, b := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > max {
				return true
			}
		case '}', ']':
			if depth > 0 {
				depth--
			}
		}
	}
	return false
}
