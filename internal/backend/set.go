package backend

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options configure a [Set]. The zero value of each field means its
// documented default.
type Options struct {
	// Logger receives lifecycle events and backends' stderr. Default: discard.
	Logger *slog.Logger
	// HTTPClient is used for remote backends. Default: a client whose pool
	// keeps 256 idle connections per host.
	HTTPClient *http.Client
	// ClientInfo is how vmcp introduces itself to backends.
	// Default: {Name: "vmcp"}.
	ClientInfo *mcp.Implementation
	// ConnectTimeout bounds connecting and listing. Default: 10s.
	ConnectTimeout time.Duration
	// HealthInterval is the time between pings. Default: 30s.
	HealthInterval time.Duration
	// UnhealthyThreshold is the number of consecutive failed pings that
	// take a backend down. Default: 3.
	UnhealthyThreshold int
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts. Defaults: 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// MaxResultBytes bounds what vmcp reads of one answer from a backend
	// (a result, a JSON answer, one event of an event stream); an answer
	// over it fails its call. Default: [DefaultMaxResultBytes].
	MaxResultBytes int
	// OnLargeAnswer is called with the size of an answer of at least
	// [LargeAnswer] bytes, once it is read, so that the process can hand
	// the memory back when the call is over. It must not block.
	// Default: nothing.
	OnLargeAnswer func(size int)
	// HideEnv names environment variables stdio children must not inherit
	// (vmcp's secrets); variables starting with VMCP_SECRET are never
	// inherited.
	HideEnv []string
	// OnChange is called whenever a backend's inventory or health changes.
	// It must not block.
	OnChange func()
	// OnResourceUpdated is called when a backend reports that a subscribed
	// resource changed.
	OnResourceUpdated func(ctx context.Context, backend string, p *mcp.ResourceUpdatedNotificationParams)
}

// DefaultMaxResultBytes is the default of [Options.MaxResultBytes].
const DefaultMaxResultBytes = 64 << 20

// LargeAnswer is the size from which an answer counts as large
// ([Options.OnLargeAnswer]).
const LargeAnswer = 8 << 20

// largeAnswer reports an answer of n bytes.
func (s *Set) largeAnswer(n int) {
	if n >= LargeAnswer && s.opts.OnLargeAnswer != nil {
		s.opts.OnLargeAnswer(n)
	}
}

// NewHTTPClient returns an HTTP client sized for a gateway, over net/http's
// Transport (proxies from the environment, HTTP/2 over TLS, retries of
// requests that never reached a reused connection):
//
//   - up to 256 idle connections per backend host (1,024 in all), so that
//     concurrent calls reuse connections instead of dialing; net/http's
//     default of 2 per host would make every call beyond two in flight dial
//     anew and leave the socket in TIME_WAIT;
//   - no cap on connections per host: each backend connection keeps a GET
//     stream open for its life, and a cap would make calls queue behind
//     them;
//   - idle connections closed after 90 s, a dial timeout of 30 s and TCP
//     keep-alives every 30 s (net/http's defaults), and response headers
//     bounded to 1 MiB;
//   - read and write buffers of 16 KiB (net/http: 4 KiB), so that a
//     result of some size takes fewer system calls.
//
// These replace a hand-written HTTP/1.1 pool for raw calls that saved
// 10–37 µs per call on loopback (docs/benchmarks.md).
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.MaxResponseHeaderBytes = 1 << 20
	t.ReadBufferSize = 16 << 10
	t.WriteBufferSize = 16 << 10
	return &http.Client{Transport: t}
}

// Set owns every backend of a gateway.
type Set struct {
	opts     Options
	backends []*Backend // fixed at creation, in configuration order
	byName   map[string]*Backend

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSet returns the backends described by specs, not yet connected.
func NewSet(specs []Spec, opts *Options) *Set {
	s := &Set{byName: map[string]*Backend{}}
	if opts != nil {
		s.opts = *opts
	}
	o := &s.opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = NewHTTPClient()
	}
	if o.ClientInfo == nil {
		o.ClientInfo = &mcp.Implementation{Name: "vmcp"}
	}
	o.ConnectTimeout = cmp.Or(o.ConnectTimeout, 10*time.Second)
	o.HealthInterval = cmp.Or(o.HealthInterval, 30*time.Second)
	o.UnhealthyThreshold = cmp.Or(o.UnhealthyThreshold, 3)
	o.MinBackoff = cmp.Or(o.MinBackoff, 500*time.Millisecond)
	o.MaxBackoff = cmp.Or(o.MaxBackoff, 30*time.Second)
	o.MaxResultBytes = cmp.Or(o.MaxResultBytes, DefaultMaxResultBytes)
	for _, spec := range specs {
		b := newBackend(spec, s)
		s.backends = append(s.backends, b)
		s.byName[spec.Name] = b
	}
	return s
}

// Start connects every backend in parallel and keeps them connected until
// Close. It does not wait for any connection.
func (s *Set) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, b := range s.backends {
		s.wg.Go(func() { b.run(ctx) })
	}
}

// WaitAttempted waits until every backend has finished its first connection
// attempt, successful or not, or ctx is done.
func (s *Set) WaitAttempted(ctx context.Context) error {
	for _, b := range s.backends {
		select {
		case <-b.attempts:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Attempted reports whether every backend has finished its first attempt.
func (s *Set) Attempted() bool {
	for _, b := range s.backends {
		select {
		case <-b.attempts:
		default:
			return false
		}
	}
	return true
}

// Get returns the named backend, or nil.
func (s *Set) Get(name string) *Backend { return s.byName[name] }

// All returns the backends in configuration order.
func (s *Set) All() []*Backend { return s.backends }

// Statuses returns every backend's status, in configuration order.
func (s *Set) Statuses() []Status {
	out := make([]Status, len(s.backends))
	for i, b := range s.backends {
		out[i] = b.Status()
	}
	return out
}

// Inventories returns the inventories of the ready backends, in
// configuration order.
func (s *Set) Inventories() []*Inventory {
	var out []*Inventory
	for _, b := range s.backends {
		if inv := b.Inventory(); inv != nil {
			out = append(out, inv)
		}
	}
	return out
}

func (s *Set) changed() {
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// Close stops the supervisors and closes every connection; stdio children
// are stopped (stdin closed, then SIGTERM, then SIGKILL).
func (s *Set) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	var wg sync.WaitGroup
	for _, b := range s.backends {
		wg.Go(b.stop)
	}
	wg.Wait()
}
