package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"
)

// Server-sent events, as the HTML standard defines the event stream format:
// lines end in CRLF, LF or a lone CR; a blank line ends an event; the data
// of its "data" lines is joined with LF; "id" sets the stream's last event
// ID (unless it holds a NUL), "retry" its reconnection time (digits only);
// comment lines (":") and other fields are ignored; an event with no data
// is not dispatched, and neither is one the stream ends inside.
//
// Backends send JSON-RPC messages as events on the answers to POSTs and on
// GET streams. Both vmcp's own reads of answers (backend/raw.go) and its
// guard of the go-sdk's reads (backend/guard.go) use this reader, which
// appends each event's data straight into the caller's buffer (a result of
// many megabytes is copied once) and bounds it.

// ErrEventTooLarge is an event whose data is larger than the reader's bound.
var ErrEventTooLarge = errors.New("event larger than the result size limit")

// SSEReader reads events from a stream.
type SSEReader struct {
	r   *bufio.Reader
	max int // bound on one event's data

	lastID string        // the last event ID the stream set
	retry  time.Duration // the last reconnection time the stream set; 0: none

	skipLF   bool         // the last line ended in CR: a LF right after it belongs to it
	skipping bool         // an event over the bound is being read to its end
	value    bytes.Buffer // an id, retry or event field's value
}

// ssePeek is how much of a line head waits for before handing out a part
// of it: more than any field name vmcp reads.
const ssePeek = 16

// sseFieldMax bounds the value of a field other than data; longer values
// are ignored.
const sseFieldMax = 4096

// NewSSEReader reads events from r, each event's data bounded by max bytes.
func NewSSEReader(r *bufio.Reader, max int) *SSEReader { return &SSEReader{r: r, max: max} }

// Max is the bound on one event's data.
func (s *SSEReader) Max() int { return s.max }

// LastID is the last event ID the stream set ("" if none), for resuming it
// with Last-Event-ID.
func (s *SSEReader) LastID() string { return s.lastID }

// Retry is the last reconnection time the stream set (0 if none).
func (s *SSEReader) Retry() time.Duration { return s.retry }

// Resume makes the reader read a new stream (a resumption of the one it
// read, through the same bufio.Reader, reset by the caller): the line and
// event state of the old stream is dropped, its last event ID and retry
// time are kept.
func (s *SSEReader) Resume() { s.skipLF, s.skipping = false, false }

// next reads the next event that has data into data (which it resets) and
// returns the event's type ("message" if it had none). At the end of the
// stream it returns io.EOF, or io.ErrUnexpectedEOF if the stream ended
// inside an event (whose data is then discarded). An event over the bound
// gives ErrEventTooLarge; the next call reads on after that event.
func (s *SSEReader) Next(data *bytes.Buffer) (string, error) {
	data.Reset()
	event, hasData, inEvent := "", false, false
	for {
		head, end, err := s.head()
		if err != nil {
			if err == io.EOF && (inEvent || s.skipping) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if len(head) == 0 && end { // a blank line: the end of an event
			if s.skipping {
				s.skipping, inEvent, hasData, event = false, false, false, ""
				data.Reset()
				continue
			}
			if hasData {
				if b := data.Bytes(); len(b) > 0 && b[len(b)-1] == '\n' {
					data.Truncate(len(b) - 1)
				}
				if event == "" {
					event = "message"
				}
				return event, nil
			}
			inEvent, event = false, ""
			continue
		}
		inEvent = true
		name, value, ok := bytes.Cut(head, []byte(":"))
		if ok {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		// name and value point into the reader's buffer: they are not
		// used once more of the line is read.
		switch field := string(name); {
		case field == "data" && !s.skipping:
			hasData = true
			if err = s.appendRest(data, value, end); err == nil {
				data.WriteByte('\n')
			}
			if err == ErrEventTooLarge {
				s.skipping = true
				data.Reset()
				return "", err
			}
		case field == "id" || field == "retry" || field == "event":
			s.value.Reset()
			err = s.appendRest(&s.value, value, end)
			if err == ErrEventTooLarge {
				err = nil // an overlong value is ignored
				break
			}
			if err == nil {
				s.setField(field, s.value.Bytes(), &event)
			}
		default: // a comment, another field, or data of an event over the bound
			err = s.skip(end)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// setField applies an id, retry or event field.
func (s *SSEReader) setField(field string, v []byte, event *string) {
	switch field {
	case "id":
		if bytes.IndexByte(v, 0) < 0 {
			s.lastID = string(v)
		}
	case "retry":
		if ms, err := strconv.ParseUint(string(v), 10, 31); err == nil && isDigits(v) {
			s.retry = time.Duration(ms) * time.Millisecond
		}
	case "event":
		*event = string(v)
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// head returns the start of the next line: the whole line if it is in the
// reader's buffer (end true, its terminator consumed), else at least enough
// of it to hold its field name. The slice is valid until the next read. A
// stream that ends inside a line gives io.ErrUnexpectedEOF.
func (s *SSEReader) head() (line []byte, end bool, err error) {
	for want := 1; ; {
		_, perr := s.r.Peek(want)
		b, _ := s.r.Peek(s.r.Buffered())
		if s.skipLF && len(b) > 0 {
			s.skipLF = false
			if b[0] == '\n' {
				_, _ = s.r.Discard(1)
				want = 1
				continue
			}
		}
		if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
			s.skipLF = b[i] == '\r'
			_, _ = s.r.Discard(i + 1)
			return b[:i], true, nil
		}
		if perr != nil {
			if perr == io.EOF && len(b) > 0 {
				perr = io.ErrUnexpectedEOF
			}
			return nil, false, perr
		}
		// Enough to know the field and whether its value starts with a
		// space (which is not part of it).
		if colon := bytes.IndexByte(b, ':'); colon >= 0 && colon+1 < len(b) || len(b) >= ssePeek || len(b) == s.r.Size() {
			_, _ = s.r.Discard(len(b))
			return b, false, nil
		}
		want = len(b) + 1
	}
}

// appendRest appends first, and the rest of the line if it did not end,
// to dst, bounded by s.max; past the bound the line is read to its end and
// ErrEventTooLarge returned.
func (s *SSEReader) appendRest(dst *bytes.Buffer, first []byte, end bool) error {
	limit := s.max
	if dst == &s.value {
		limit = sseFieldMax
	}
	over := dst.Len()+len(first) > limit
	if !over {
		dst.Write(first)
	}
	for !end {
		b, e, err := s.rest()
		if err != nil {
			return err
		}
		end = e
		if !over && dst.Len()+len(b) > limit {
			over = true
		}
		if !over {
			dst.Write(b)
		}
	}
	if over {
		return ErrEventTooLarge
	}
	return nil
}

// skip reads the rest of a line that did not end.
func (s *SSEReader) skip(end bool) error {
	for !end {
		var err error
		if _, end, err = s.rest(); err != nil {
			return err
		}
	}
	return nil
}

// rest returns the next piece of a line: up to its end (end true, the
// terminator consumed) or all that is buffered.
func (s *SSEReader) rest() ([]byte, bool, error) {
	if s.r.Buffered() == 0 {
		if _, err := s.r.Peek(1); err != nil {
			return nil, false, err
		}
	}
	b, _ := s.r.Peek(s.r.Buffered())
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		s.skipLF = b[i] == '\r'
		_, _ = s.r.Discard(i + 1)
		return b[:i], true, nil
	}
	_, _ = s.r.Discard(len(b))
	return b, false, nil
}
