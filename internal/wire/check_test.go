package wire

import (
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// FuzzCheck compares Check with the go-sdk's own decoder: the
// same messages pass, with the same id and kind.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{}}`, `{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"x"}}`,
		`{"jsonrpc":"2.0","method":"ping"}`, `{"jsonrpc":"2.0","id":2.5,"method":"x","params":[]}`,
		`{"jsonrpc":"1.0","id":1,"result":{}}`, `{"jsonrpc":"2.0","result":{}}`, `{"jsonrpc":"2.0","id":null,"result":1}`,
		`{"jsonrpc":"2.0","id":true,"result":1}`, `{"jsonrpc":"2.0","method":7}`, `{"JSONRPC":"2.0","id":1,"result":1}`,
		`{"jsonrpc":"2.0","id":1,"result":{}} trailing`, `[1,2]`, `"x"`, ``, `{`, `{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"result":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		id, response, err := Check([]byte(data))
		msg, sdkErr := jsonrpc.DecodeMessage([]byte(data))
		if (err == nil) != (sdkErr == nil) {
			t.Fatalf("%q: Check %v, the go-sdk %v", data, err, sdkErr)
		}
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			if !response || m.ID != id {
				t.Errorf("%q: Check says response %v id %v; the go-sdk a response with id %v", data, response, id, m.ID)
			}
		case *jsonrpc.Request:
			if response || m.ID != id {
				t.Errorf("%q: Check says response %v id %v; the go-sdk a request with id %v", data, response, id, m.ID)
			}
		}
	})
}
