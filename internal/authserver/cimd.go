package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Client ID metadata documents: a client may use an HTTPS URL as its
// client_id; the document at that URL describes it. Fetching a URL a
// stranger chose is an SSRF risk, so the fetch refuses private, loopback
// and link-local addresses (checked on the address actually dialed, so DNS
// cannot change between check and use), follows no redirects, reads at
// most 5 KB, and times out. Failures are never cached.

const (
	cimdMaxBytes = 5 << 10
	cimdTimeout  = 5 * time.Second
	cimdMaxCache = time.Hour
	cimdDefCache = 5 * time.Minute
)

type cimdResolver struct {
	client       *http.Client
	allowPrivate bool
	logger       *slog.Logger

	cache *lru.Cache[string, cimdEntry] // safe for concurrent use
}

// maxCIMDEntries bounds the metadata documents kept; when full, the least
// recently used one makes room.
const maxCIMDEntries = 1000

type cimdEntry struct {
	client *Client
	until  time.Time
}

func newCIMDResolver(allowPrivate bool, logger *slog.Logger) *cimdResolver {
	dialer := &net.Dialer{Timeout: cimdTimeout}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !publicIP(ip) {
				return fmt.Errorf("client metadata host resolves to a non-public address %s", host)
			}
			return nil
		}
	}
	cache, _ := lru.New[string, cimdEntry](maxCIMDEntries) // fails only for a size < 1
	transport := &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: cimdTimeout, ResponseHeaderTimeout: cimdTimeout}
	return &cimdResolver{
		client: &http.Client{Transport: transport, Timeout: cimdTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirects are not followed") }},
		allowPrivate: allowPrivate,
		logger:       logger,
		cache:        cache,
	}
}

// publicIP reports whether ip is a globally routable unicast address
// (IPv4-mapped IPv6 addresses are judged as IPv4).
func publicIP(ip net.IP) bool {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		(len(ip) == net.IPv4len && ip[0] == 100 && ip[1]&0xc0 == 64) || // 100.64/10 carrier-grade NAT
		(len(ip) == net.IPv4len && ip[0] == 0))
}

// isURLClientID reports whether a client_id is meant as a metadata
// document URL.
func isURLClientID(id string) bool {
	return strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://")
}

// checkClientIDURL applies the metadata document rules to the URL itself.
func (c *cimdResolver) checkClientIDURL(id string) error {
	u, err := url.Parse(id)
	switch {
	case err != nil:
		return fmt.Errorf("client_id is not a URL: %w", err)
	case u.Scheme != "https" && !(c.allowPrivate && u.Scheme == "http"):
		return errors.New("a URL client_id must be https")
	case u.User != nil:
		return errors.New("a URL client_id must not contain user info")
	case u.Fragment != "" || strings.Contains(id, "#"):
		return errors.New("a URL client_id must not contain a fragment")
	case u.Path == "" || u.Path == "/":
		return errors.New("a URL client_id must have a path")
	case slices.ContainsFunc(strings.Split(u.Path, "/"), func(seg string) bool { return seg == "." || seg == ".." }):
		return errors.New("a URL client_id must not contain dot segments")
	}
	return nil
}

// resolve returns the client a metadata document describes, from cache if
// the document allowed caching.
func (c *cimdResolver) resolve(ctx context.Context, id string) (*Client, error) {
	if err := c.checkClientIDURL(id); err != nil {
		return nil, err
	}
	e, ok := c.cache.Get(id)
	if ok && time.Now().Before(e.until) {
		return e.client, nil
	}
	client, ttl, err := c.fetch(ctx, id)
	if err != nil {
		c.logger.Warn("client metadata document rejected", "client_id", id, "error", err)
		return nil, err
	}
	if ttl > 0 {
		c.cache.Add(id, cimdEntry{client: client, until: time.Now().Add(ttl)})
	}
	return client, nil
}

// cimdDocument is the part of a metadata document vmcp reads.
type cimdDocument struct {
	ClientID     string   `json:"client_id"`
	Name         string   `json:"client_name"`
	RedirectURIs []string `json:"redirect_uris"`
	GrantTypes   []string `json:"grant_types"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	Secret       *string  `json:"client_secret"`
	SecretExp    *int64   `json:"client_secret_expires_at"`
	Scope        string   `json:"scope"`
}

func (c *cimdResolver) fetch(ctx context.Context, id string) (*Client, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching client metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetching client metadata: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading client metadata: %w", err)
	}
	if len(body) > cimdMaxBytes {
		return nil, 0, fmt.Errorf("client metadata document exceeds %d bytes", cimdMaxBytes)
	}
	var d cimdDocument
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, 0, fmt.Errorf("client metadata is not a JSON object: %w", err)
	}
	switch {
	case d.ClientID != id:
		return nil, 0, fmt.Errorf("the document's client_id %q is not its URL", d.ClientID)
	case d.Name == "":
		return nil, 0, errors.New("the document has no client_name")
	case len(d.RedirectURIs) == 0:
		return nil, 0, errors.New("the document has no redirect_uris")
	case d.Secret != nil || d.SecretExp != nil:
		return nil, 0, errors.New("a metadata document must not carry a client secret")
	case d.AuthMethod != "" && d.AuthMethod != "none":
		return nil, 0, fmt.Errorf("token_endpoint_auth_method %q is not allowed for a metadata document client (none only)", d.AuthMethod)
	}
	for _, u := range d.RedirectURIs {
		if err := checkRedirectURI(u, "native"); err != nil {
			return nil, 0, err
		}
	}
	grants := d.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code", "refresh_token"}
	}
	client := &Client{ID: id, Name: d.Name, RedirectURIs: d.RedirectURIs, GrantTypes: grants,
		ResponseTypes: []string{"code"}, Scopes: strings.Fields(d.Scope), AuthMethod: "none"}
	return client, cacheTTL(resp.Header.Get("Cache-Control")), nil
}

// cacheTTL reads max-age from Cache-Control (capped); no-store and
// no-cache mean no caching; nothing means a short default.
func cacheTTL(cc string) time.Duration {
	if cc == "" {
		return cimdDefCache
	}
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		switch {
		case d == "no-store" || d == "no-cache" || d == "private":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.Atoi(strings.TrimPrefix(d, "max-age="))
			if err != nil || n <= 0 {
				return 0
			}
			return min(time.Duration(n)*time.Second, cimdMaxCache)
		}
	}
	return cimdDefCache
}
