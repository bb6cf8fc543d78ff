// Package wire is vmcp's raw JSON-RPC codec: the few messages vmcp reads
// and writes itself, without the go-sdk's typed values, on both sides of
// the gateway (the frontend's fast path, the backend's raw calls), and the
// reader of server-sent event streams.
//
//   - Parse and ParseRequest read a message into raw parts that point into
//     the buffer it came from (no copy); Check tells whether the go-sdk
//     would decode a message at all.
//   - AppendResponse, AppendError, AppendRequest and AppendNotification
//     write the envelopes, around raw parts that are written as they are.
//   - SSEReader reads events as the HTML standard defines them (CR, LF and
//     CRLF line endings), each event's data bounded.
//
// Every parser here has a fuzz test, with its seed corpus under
// testdata/fuzz.
package wire
