package authe2e

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

var errStopAtIdP = errors.New("stopped at the IdP")

// TestLoginLinkStolenHydra is the consent bypass end to end, with Hydra as
// the IdP: the attacker registers a client, approves vmcp's consent page
// in their own browser and stops at the redirect to Hydra; the victim
// opens that URL, logs in at Hydra and is sent to vmcp's callback. vmcp
// must refuse there with an error page: no code reaches the attacker's
// redirect URI. The attacker's own browser still completes a login.
func TestLoginLinkStolenHydra(t *testing.T) {
	skipUnlessE2E(t)
	h := hydra.Start(t, nil)
	g := startGateway(t, h, nil)

	authURL := goAuthorizeURL(g, registerGoClient(t, g), "attacker-verifier-0123456789-0123456789-0123456789")

	// The attacker approves consent and stops where the browser would go to Hydra.
	stolenLink := func() string {
		var link string
		attacker := h.NewBrowser()
		attacker.BeforeHop = func(u *url.URL) error {
			if strings.HasPrefix(u.String(), h.PublicURL()) {
				link = u.String()
				return errStopAtIdP
			}
			return nil
		}
		if _, err := attacker.Authorize(t.Context(), authURL, goRedirect); !errors.Is(err, errStopAtIdP) {
			t.Fatalf("the attacker's authorization did not reach Hydra: %v", err)
		}
		return link
	}

	victim := h.NewBrowser()
	victim.Login = hydra.Login{Subject: "victim-42"}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	back, err := victim.Authorize(ctx, stolenLink(), goRedirect)
	if back != nil || err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "started in another browser") {
		t.Errorf("the victim opening the attacker's link: reached %v, error %v; want vmcp's 403 page and no redirect to the client", back, err)
	}

	// The same link in the browser that approved it completes.
	attacker := h.NewBrowser()
	if back, err := attacker.Authorize(ctx, authURL, goRedirect); err != nil || back.Query().Get("code") == "" {
		t.Errorf("the attacker's own login: %v, %v; want a code", back, err)
	}
}
