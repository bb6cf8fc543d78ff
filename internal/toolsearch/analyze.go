package toolsearch

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kljensen/snowball/english"
)

// maxTermLen bounds the length of one term: longer runs of letters are
// base64, hashes or noise, not words anyone searches for.
const maxTermLen = 40

// terms appends the search terms of text to dst: words split at anything
// that is not a letter or a digit and at camelCase boundaries
// ("getPullRequest", "get_pull_request" and "get-pull-request" give the same
// terms), lower-cased, English stop words dropped, each stemmed with the
// Snowball (Porter2) English stemmer.
//
// Stems are remembered in st (nil remembers none): stemming is most of the
// cost of indexing, and tools share most of their words.
func (st stems) terms(dst []string, text string) []string {
	start := -1
	var prev rune
	flush := func(end int) {
		if start >= 0 {
			dst = st.appendTerm(dst, text[start:end])
			start = -1
		}
	}
	for i, r := range text {
		word := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case !word:
			flush(i)
		case start < 0:
			start = i
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			// camelCase: a new word starts at the capital.
			flush(i)
			start = i
		case unicode.IsUpper(prev) && unicode.IsLower(r) && i-start > utf8.RuneLen(prev):
			// "HTTPServer": the word starts at the last capital.
			p := i - utf8.RuneLen(prev)
			flush(p)
			start = p
		}
		prev = r
	}
	flush(len(text))
	return dst
}

func (st stems) appendTerm(dst []string, w string) []string {
	if len(w) < 2 || len(w) > maxTermLen {
		return dst
	}
	w = strings.ToLower(w)
	if stem, ok := st.m[w]; ok {
		return append(dst, stem)
	}
	if english.IsStopWord(w) {
		return dst
	}
	stem := english.Stem(w, true)
	if st.m != nil && st.write {
		st.m[w] = stem
	}
	return append(dst, stem)
}

// stems remembers the stem of each word seen; an Index's is filled while
// it is built and only read by searches.
type stems struct {
	m     map[string]string
	write bool
}

func newStems() stems { return stems{m: map[string]string{}, write: true} }

// lookup returns st for reading only (safe for concurrent use).
func (st stems) lookup() stems { return stems{m: st.m} }

// terms without remembering stems.
func terms(dst []string, text string) []string { return stems{}.terms(dst, text) }
