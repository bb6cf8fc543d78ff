package toolsearch

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
)

// Cache keeps tool embeddings across sessions and restarts. Keys are
// hashes of the model and of the text embedded, so a changed tool or
// another model never reuses a vector. Implementations must be safe for
// concurrent use; a failing cache only costs embedding requests again.
type Cache interface {
	// Load returns the vectors known for keys (missing keys are absent).
	Load(ctx context.Context, keys []string) (map[string][]float32, error)
	// Store keeps vectors.
	Store(ctx context.Context, vecs map[string][]float32) error
}

// DefaultCacheEntries bounds a [FileCache] unless told otherwise.
const DefaultCacheEntries = 20_000

// FileCache is a [Cache] in one file: records appended as they come,
// read whole at open, and rewritten without the oldest entries once it
// holds more than its bound (or twice as many records as live entries).
// A torn last record (a crash while writing) is ignored.
type FileCache struct {
	path string
	max  int

	mu      sync.Mutex // guards the fields below
	vecs    map[string][]float32
	order   []string // keys, oldest first
	records int      // records in the file, including replaced ones
}

var fileMagic = []byte("vmcp-embeddings-1\n")

// OpenFileCache opens (or creates) the cache file at path, keeping at most
// maxEntries vectors (DefaultCacheEntries if 0 or less). The directory is
// created if needed, readable by its owner only.
func OpenFileCache(path string, maxEntries int) (*FileCache, error) {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	c := &FileCache{path: path, max: maxEntries, vecs: map[string][]float32{}}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("embedding cache: %w", err)
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c, c.rewrite()
	case err != nil:
		return nil, fmt.Errorf("embedding cache: %w", err)
	}
	defer f.Close()
	clean, err := c.read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("embedding cache %s: %w", path, err)
	}
	if !clean || len(c.vecs) > c.max {
		c.evict()
		return c, c.rewrite()
	}
	return c, nil
}

// read loads the records of r; clean is false if it ended in a torn or
// corrupt record.
func (c *FileCache) read(r *bufio.Reader) (clean bool, err error) {
	head := make([]byte, len(fileMagic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != string(fileMagic) {
		return false, errors.New("not an embedding cache file")
	}
	for {
		key, vec, err := readRecord(r)
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, nil
		}
		c.put(key, vec)
		c.records++
	}
}

// A record: key length (uint16), key, dimensions (uint32), the float32
// components, and a CRC-32 of all that; little endian.
func readRecord(r *bufio.Reader) (string, []float32, error) {
	var n uint16
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return "", nil, err
	}
	key := make([]byte, n)
	var dims uint32
	if _, err := io.ReadFull(r, key); err != nil {
		return "", nil, io.ErrUnexpectedEOF
	}
	if err := binary.Read(r, binary.LittleEndian, &dims); err != nil || dims == 0 || dims > maxDimensions {
		return "", nil, io.ErrUnexpectedEOF
	}
	vec := make([]float32, dims)
	if err := binary.Read(r, binary.LittleEndian, vec); err != nil {
		return "", nil, io.ErrUnexpectedEOF
	}
	var sum uint32
	if err := binary.Read(r, binary.LittleEndian, &sum); err != nil || sum != recordCRC(string(key), vec) {
		return "", nil, io.ErrUnexpectedEOF
	}
	return string(key), vec, nil
}

func appendRecord(b []byte, key string, vec []float32) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vec)))
	for _, x := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return binary.LittleEndian.AppendUint32(b, recordCRC(key, vec))
}

func recordCRC(key string, vec []float32) uint32 {
	h := crc32.NewIEEE()
	h.Write([]byte(key))
	var b [4]byte
	for _, x := range vec {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		h.Write(b[:])
	}
	return h.Sum32()
}

func (c *FileCache) put(key string, vec []float32) {
	if _, ok := c.vecs[key]; !ok {
		c.order = append(c.order, key)
	}
	c.vecs[key] = vec
}

// evict drops the oldest entries beyond the bound.
func (c *FileCache) evict() {
	if over := len(c.order) - c.max; over > 0 {
		for _, k := range c.order[:over] {
			delete(c.vecs, k)
		}
		c.order = append([]string(nil), c.order[over:]...)
	}
}

// Load implements [Cache].
func (c *FileCache) Load(_ context.Context, keys []string) (map[string][]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return pick(c.vecs, keys), nil
}

// pick returns the entries of m under keys.
func pick(m map[string][]float32, keys []string) map[string][]float32 {
	out := map[string][]float32{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// Store implements [Cache]: it appends the new vectors to the file, or
// rewrites the file when it has grown past its bound.
func (c *FileCache) Store(_ context.Context, vecs map[string][]float32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var buf []byte
	for k, v := range vecs {
		if len(k) > math.MaxUint16 || len(v) == 0 || len(v) > maxDimensions {
			continue
		}
		c.put(k, v)
		buf = appendRecord(buf, k, v)
		c.records++
	}
	if len(c.vecs) > c.max || c.records > 2*len(c.vecs)+64 {
		c.evict()
		return c.rewrite()
	}
	if len(buf) == 0 {
		return nil
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("embedding cache: %w", err)
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("embedding cache: %w", err)
	}
	return nil
}

// rewrite writes the live entries to a new file and renames it over the
// old one.
func (c *FileCache) rewrite() error {
	tmp, err := os.CreateTemp(filepath.Dir(c.path), filepath.Base(c.path)+".*")
	if err != nil {
		return fmt.Errorf("embedding cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	w := bufio.NewWriter(tmp)
	w.Write(fileMagic)
	var buf []byte
	for _, k := range c.order {
		buf = appendRecord(buf[:0], k, c.vecs[k])
		w.Write(buf)
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		return fmt.Errorf("embedding cache: %w", err)
	}
	c.records = len(c.order)
	return nil
}

// memoryCache is the [Cache] used when none is configured: vectors
// survive catalog changes but not a restart.
type memoryCache struct {
	mu   sync.Mutex // guards vecs
	vecs map[string][]float32
	max  int
}

func (m *memoryCache) Load(_ context.Context, keys []string) (map[string][]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return pick(m.vecs, keys), nil
}

func (m *memoryCache) Store(_ context.Context, vecs map[string][]float32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.vecs)+len(vecs) > m.max {
		clear(m.vecs)
	}
	for k, v := range vecs {
		m.vecs[k] = v
	}
	return nil
}
