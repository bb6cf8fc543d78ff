package wire

import (
	"encoding/json"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sjson "github.com/segmentio/encoding/json"
)

// The Append functions write a message's envelope around raw parts, which
// must be valid JSON and are written as they are. A nil or empty id is
// written as null (an answer to a request whose id could not be read).

func appendID(dst []byte, id json.RawMessage) []byte {
	if len(id) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// AppendResponse appends the response to the request with id, carrying
// result.
func AppendResponse(dst []byte, id, result json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":`...)
	dst = append(dst, result...)
	return append(dst, '}')
}

// AppendError appends the error response to the request with id.
func AppendError(dst []byte, id json.RawMessage, e *jsonrpc.Error) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, e.Code, 10)
	dst = append(dst, `,"message":`...)
	dst = sjson.AppendEscape(dst, e.Message, 0)
	if len(e.Data) > 0 {
		dst = append(append(dst, `,"data":`...), e.Data...)
	}
	return append(dst, "}}"...)
}

// AppendRequest appends a request (params nil: none).
func AppendRequest(dst []byte, id json.RawMessage, method string, params json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = appendID(dst, id)
	return appendMethod(dst, method, params)
}

// AppendNotification appends a notification (params nil: none).
func AppendNotification(dst []byte, method string, params json.RawMessage) []byte {
	return appendMethod(append(dst, `{"jsonrpc":"2.0"`...), method, params)
}

func appendMethod(dst []byte, method string, params json.RawMessage) []byte {
	dst = append(dst, `,"method":`...)
	dst = sjson.AppendEscape(dst, method, 0)
	if len(params) > 0 {
		dst = append(append(dst, `,"params":`...), params...)
	}
	return append(dst, '}')
}

// AppendToolCall appends a tools/call request: the tool's name, and
// arguments and _meta if not empty.
func AppendToolCall(dst []byte, id json.RawMessage, name string, arguments, meta json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"method":"tools/call","params":{"name":`...)
	dst = sjson.AppendEscape(dst, name, 0)
	if len(arguments) > 0 {
		dst = append(append(dst, `,"arguments":`...), arguments...)
	}
	if len(meta) > 0 {
		dst = append(append(dst, `,"_meta":`...), meta...)
	}
	return append(dst, "}}"...)
}
