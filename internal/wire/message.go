package wire

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sjson "github.com/segmentio/encoding/json"
)

// parseFlags parse without copying (raw parts and numbers point into the
// input) and match member names exactly, as the go-sdk does.
const parseFlags = sjson.DontCopyRawMessage | sjson.DontCopyNumber | sjson.DontMatchCaseInsensitiveStructFields

// Message is any JSON-RPC message, in raw parts that point into the bytes
// it was parsed from.
type Message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *jsonrpc.Error  `json:"error"`
}

// Parse parses data as one message into m. It does not check the version:
// backends that omit it are read as the go-sdk reads them (Check).
func Parse(data []byte, m *Message) error {
	_, err := sjson.Parse(data, m, parseFlags)
	return err
}

// IsRequest reports whether m, a message with a method, is a request (it
// has an id that is not null) rather than a notification.
func (m *Message) IsRequest() bool { return len(m.ID) > 0 && string(m.ID) != "null" }

// Request is a client's message as the gateway's fast path reads it: the
// envelope and the params of the methods it serves.
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  RequestParams   `json:"params"`
}

// RequestParams are the params of tools/call (Name, Arguments, Meta),
// tools/list (Cursor, Meta) and notifications/cancelled (RequestID), raw.
type RequestParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Cursor    string          `json:"cursor"`
	Meta      json.RawMessage `json:"_meta"`
	RequestID json.RawMessage `json:"requestId"`
}

// ParseRequest reads a client's message (a valid JSON value) once: in full
// into m if it is a JSON-RPC 2.0 message whose params fit RequestParams
// (full is then true), else only its id and method (m is zeroed). The id is
// returned only if an answer can carry it (ValidID) or if it is null (which
// the caller refuses); otherwise it is nil.
func ParseRequest(data []byte, m *Request) (id json.RawMessage, method string, full bool) {
	if _, err := sjson.Parse(data, m, parseFlags); err == nil && m.JSONRPC == "2.0" {
		id, method, full = m.ID, m.Method, true
	} else {
		*m = Request{}
		var h struct {
			ID     json.RawMessage `json:"id"`
			Method json.RawMessage `json:"method"`
		}
		if _, err := sjson.Parse(data, &h, parseFlags); err == nil {
			id = h.ID
			if len(h.Method) > 0 && h.Method[0] == '"' {
				_, _ = sjson.Parse(h.Method, &method, 0)
			}
		}
	}
	if !ValidID(id) && !IsNull(id) {
		id = nil
	}
	return id, method, full
}

// ValidID reports whether raw is a JSON-RPC id an answer can carry: a
// string or a number.
func ValidID(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '"' || raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// IsNull reports whether raw is the JSON null.
func IsNull(raw json.RawMessage) bool { return string(raw) == "null" }

// ParseMembers parses a JSON object into v, a struct of json.RawMessage
// fields, without copying: each field points into data (nil if the member
// is absent, "null" if it is null). Member names are matched exactly
// (escapes decoded), the last of duplicates wins.
func ParseMembers(data []byte, v any) error {
	_, err := sjson.Parse(data, v, parseFlags)
	return err
}

// Unmarshal decodes one JSON value into v as the go-sdk decodes messages
// (segmentio's decoder, member names matched exactly), without copying:
// raw parts, strings and numbers of v may point into data.
func Unmarshal(data []byte, v any) error {
	rest, err := sjson.Parse(data, v, parseFlags|sjson.DontCopyString)
	if err == nil && len(bytes.TrimSpace(rest)) > 0 {
		err = errors.New("wire: data after the JSON value")
	}
	return err
}
