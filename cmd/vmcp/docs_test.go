package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the outputs of the documentation's command examples")

// docExample is a fenced block of a document that starts with a command
// line "$ vmcp …" (continued with a trailing backslash) followed by its
// output, or a block whose info string names the file it shows
// ("```yaml docs/examples/x.yaml").
type docExample struct {
	file       string
	line       int    // of the command, or of the block's first line
	command    string // without "$ ", continuations joined
	copyOf     string // the file the block shows, instead of a command
	start, end int    // byte offsets of the output (or the copy) in the file
	output     string
}

// docExamples finds the command examples of a Markdown document.
func docExamples(file string, data []byte) []docExample {
	var out []docExample
	text := string(data)
	off, line := 0, 1
	inFence := false
	var cur *docExample
	for l := range strings.Lines(text) {
		trimmed := strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(trimmed, "```"):
			if inFence && cur != nil {
				cur.end = off
				cur.output = text[cur.start:cur.end]
				out = append(out, *cur)
			}
			inFence, cur = !inFence, nil
			info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			switch {
			case inFence && len(info) == 2:
				cur = &docExample{file: file, line: line + 1, copyOf: info[1], start: off + len(l)}
			case inFence && strings.HasPrefix(text[off+len(l):], "$ vmcp "):
				cur = &docExample{file: file, line: line + 1}
			}
		case cur != nil && cur.start == 0:
			cmdLine := strings.TrimPrefix(trimmed, "$ ")
			cont := strings.HasSuffix(cmdLine, "\\")
			cur.command += strings.TrimSuffix(cmdLine, "\\")
			if !cont {
				cur.start = off + len(l)
			}
		}
		off += len(l)
		line++
	}
	return out
}

// shellWords splits a command line as a POSIX shell would for the quoting
// the documents use: words separated by blanks, '…' and "…" quotes.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestDocExamples runs every "$ vmcp …" example of the documentation (from
// the repository's root, as the documents show it) and compares what it
// prints with the output the document shows. Run with -update to rewrite
// the documents' outputs from what the commands print.
func TestDocExamples(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	t.Chdir(root)
	total := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		examples := docExamples(rel, data)
		total += len(examples)
		var updated bytes.Buffer
		last := 0
		for _, ex := range examples {
			if ex.copyOf != "" {
				want, err := os.ReadFile(ex.copyOf)
				if err != nil {
					t.Fatalf("%s:%d: the block shows %s: %v", ex.file, ex.line, ex.copyOf, err)
				}
				if diff := cmp.Diff(ex.output, string(want)); diff != "" && !*update {
					t.Errorf("%s:%d: the block differs from %s (-document +file):\n%s\n"+
						"(go test ./cmd/vmcp -run TestDocExamples -update rewrites the document)", ex.file, ex.line, ex.copyOf, diff)
				}
				updated.Write(data[last:ex.start])
				updated.Write(want)
				last = ex.end
				continue
			}
			args := shellWords(t, ex.command)
			if args[0] != "vmcp" {
				t.Fatalf("%s:%d: not a vmcp command: %q", ex.file, ex.line, ex.command)
			}
			var stdout, stderr bytes.Buffer
			err := run(args[1:], &stdout, &stderr)
			got := stdout.String() + stderr.String()
			if err != nil {
				got += "vmcp: " + err.Error() + "\n"
			}
			if diff := cmp.Diff(ex.output, got); diff != "" && !*update {
				t.Errorf("%s:%d: `%s` prints something else than the document shows (-document +printed):\n%s\n"+
					"(go test ./cmd/vmcp -run TestDocExamples -update rewrites the document)", ex.file, ex.line, ex.command, diff)
			}
			updated.Write(data[last:ex.start])
			updated.WriteString(got)
			last = ex.end
		}
		updated.Write(data[last:])
		if *update && !bytes.Equal(updated.Bytes(), data) {
			if err := os.WriteFile(file, updated.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s", rel)
		}
	}
	if total < 5 {
		t.Errorf("found %d examples in the documents, want at least 5 (authz explain, authz test, two validate, a file)", total)
	}
}
