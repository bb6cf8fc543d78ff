package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

type sseResult struct {
	Events []string // "type:data"
	LastID string
	Retry  time.Duration
	Err    string // the error that ended the stream
}

// readAllEvents reads s with an sseReader over r.
func readAllEvents(r io.Reader, size, max int) sseResult {
	sr := NewSSEReader(bufio.NewReaderSize(r, size), max)
	var out sseResult
	var data bytes.Buffer
	for {
		typ, err := sr.Next(&data)
		if errors.Is(err, ErrEventTooLarge) {
			out.Events = append(out.Events, "too large")
			continue
		}
		if err != nil {
			out.Err = err.Error()
			break
		}
		out.Events = append(out.Events, typ+":"+data.String())
	}
	out.LastID, out.Retry = sr.lastID, sr.retry
	return out
}

var lineEnd = regexp.MustCompile("\r\n|\r|\n")

// referenceEvents interprets a whole stream as the HTML standard says,
// line by line, with none of the reader's buffering.
func referenceEvents(stream string, max int) sseResult {
	var out sseResult
	lines := lineEnd.Split(stream, -1)
	complete := lines[:len(lines)-1] // the last piece has no terminator
	partial := lines[len(lines)-1] != ""
	var data strings.Builder
	event, hasData, inEvent, over := "", false, false, false
	for _, line := range complete {
		if line == "" {
			if hasData && !over {
				d := strings.TrimSuffix(data.String(), "\n")
				out.Events = append(out.Events, cmpOr(event, "message")+":"+d)
			}
			data.Reset()
			event, hasData, inEvent, over = "", false, false, false
			continue
		}
		inEvent = true
		name, value, ok := strings.Cut(line, ":")
		if ok {
			value = strings.TrimPrefix(value, " ")
		}
		switch name {
		case "data":
			hasData = true
			if !over && data.Len()+len(value) > max {
				over = true
				out.Events = append(out.Events, "too large") // reported as soon as it is seen
			}
			if !over {
				data.WriteString(value + "\n")
			}
		case "id":
			if len(value) <= sseFieldMax && !strings.Contains(value, "\x00") {
				out.LastID = value
			}
		case "retry":
			if ms, err := strconv.ParseUint(value, 10, 31); err == nil && len(value) <= sseFieldMax && isDigits([]byte(value)) {
				out.Retry = time.Duration(ms) * time.Millisecond
			}
		case "event":
			if len(value) <= sseFieldMax {
				event = value
			}
		}
	}
	out.Err = "EOF"
	if inEvent || partial {
		out.Err = "unexpected EOF"
	}
	return out
}

func cmpOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// TestSSEReader: line endings (CRLF, LF, lone CR, also split across
// reads), multi-line data, ids, retry, event types, comments, events
// without data, a stream that ends inside an event, and the bound.
func TestSSEReader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stream string
		want         sseResult
	}{
		{"LF", "data: a\n\ndata: b\n\n", sseResult{Events: []string{"message:a", "message:b"}, Err: "EOF"}},
		{"CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", sseResult{Events: []string{"message:a", "message:b"}, Err: "EOF"}},
		{"CR", "data: a\r\rdata: b\r\r", sseResult{Events: []string{"message:a", "message:b"}, Err: "EOF"}},
		{"multi-line data", "data: {\ndata: \"x\":1}\n\n", sseResult{Events: []string{"message:{\n\"x\":1}"}, Err: "EOF"}},
		{"no space after the colon", "data:x\n\n", sseResult{Events: []string{"message:x"}, Err: "EOF"}},
		{"priming event, retry", "id: 7\nretry: 1500\ndata: \n\n", sseResult{Events: []string{"message:"}, LastID: "7", Retry: 1500 * time.Millisecond, Err: "EOF"}},
		{"id without data is kept", "id: 9\n\n", sseResult{LastID: "9", Err: "EOF"}},
		{"bad retry ignored", "retry: 1s\ndata: x\n\n", sseResult{Events: []string{"message:x"}, Err: "EOF"}},
		{"comments and unknown fields", ": keep-alive\nfoo: bar\ndata: x\n\n", sseResult{Events: []string{"message:x"}, Err: "EOF"}},
		{"event type", "event: ping\ndata: x\n\n", sseResult{Events: []string{"ping:x"}, Err: "EOF"}},
		{"ends inside an event", "data: x\n", sseResult{Err: "unexpected EOF"}},
		{"ends inside a line", "data: x", sseResult{Err: "unexpected EOF"}},
		{"too large, then on", "data: 0123456789\n\ndata: ok\n\n", sseResult{Events: []string{"too large", "message:ok"}, Err: "EOF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.stream), iotest.OneByteReader(strings.NewReader(tc.stream))} {
				if diff := cmp.Diff(tc.want, readAllEvents(r, 16, 8)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
		})
	}
}

// FuzzSSEReader compares the reader, over reads of every size, with a
// line-by-line reading of the whole stream.
func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n", "data: a\r\n\r\n", "data: a\r\rid: 1\r\n\n", "event: x\ndata: 1\ndata: 2\n\n",
		"retry: 10\n:c\n\nid: \x00\ndata:\n\n", "data: 0123456789abcdef0123456789\n\n", "dat", "data: x\r",
	} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, stream string, chunk uint8) {
		want := referenceEvents(stream, 24)
		r := iotest.HalfReader(&chunked{s: stream, n: int(chunk%32) + 1})
		if diff := cmp.Diff(want, readAllEvents(r, 16, 24)); diff != "" {
			t.Errorf("stream %q (-reference +reader):\n%s", stream, diff)
		}
	})
}

// chunked reads s n bytes at a time.
type chunked struct {
	s string
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[n:]
	return n, nil
}
