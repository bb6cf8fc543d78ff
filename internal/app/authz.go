package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Validate checks what `vmcp validate` checks beyond [config.Parse]: the
// Cedar policies. The Kubernetes operator runs the same check on the
// configuration it generates, so both report the same problems.
func Validate(cfg *config.Config) error {
	_, err := NewAuthorizer(cfg, nil)
	return err
}

// NewAuthorizer builds the Cedar authorizer of cfg (nil if it has none),
// with policy errors located in the configuration file.
func NewAuthorizer(cfg *config.Config, opts *authz.Options) (*authz.Authorizer, error) {
	az := cfg.IncomingAuth.AuthzConfig
	if az == nil {
		return nil, nil
	}
	o := authz.Options{Server: cfg.Name, GroupClaims: az.GroupClaims, RoleClaims: az.RoleClaims}
	if opts != nil {
		o.Logger = opts.Logger
	}
	if az.Type == config.AuthzInline {
		o.Policies.Inline = az.Inline.Policies
		o.Policies.EntitiesJSON = []byte(az.Inline.EntitiesJSON)
	} else {
		o.Policies.Files = az.File.PolicyFiles
		o.Policies.EntitiesFile = az.File.EntitiesFile
		o.ReloadInterval = az.File.ReloadInterval.D()
	}
	a, err := authz.New(&o)
	if err != nil {
		return nil, locatePolicyErrors(cfg, err)
	}
	return a, nil
}

// locatePolicyErrors points inline policy errors at their line in the
// configuration file.
func locatePolicyErrors(cfg *config.Config, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []string
	for _, e := range errs {
		var pe *authz.PolicyError
		if errors.As(e, &pe) && strings.HasPrefix(pe.Source, "inline[") {
			i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(pe.Source, "inline["), "]"))
			out = append(out, fmt.Sprintf("%s: %v", cfg.Position(fmt.Sprintf("incomingAuth.authzConfig.inline.policies[%d]", i)), e))
			continue
		}
		out = append(out, fmt.Sprintf("%s: incomingAuth.authzConfig: %v", cfg.File, e))
	}
	return errors.New(strings.Join(out, "\n"))
}

// PolicyClaims resolves the claims policies see for a caller whose token
// has the claims token and who logged in upstream as up (nil if not
// through vmcp's authorization server): the upstream identity counts only
// when az takes claims from upstream and up is the primary provider's;
// otherwise the token's claims alone. For a user of another provider than
// the primary one, the profile claims vmcp's token copied from that
// provider are moved under [SecondaryProfileClaim], so that they never
// pass for the primary provider's (an email domain, a group).
func PolicyClaims(az *config.AuthzConfig, token map[string]any, up *authz.Upstream) authz.Claims {
	if up == nil || az.ClaimsFrom != config.ClaimsUpstream {
		return authz.Resolve(token, nil)
	}
	if up.Provider != az.PrimaryUpstreamProvider {
		return authz.Resolve(secondaryProfile(token), nil)
	}
	return authz.Resolve(token, up)
}

// SecondaryProfileClaim holds, for a user of a provider other than the
// primary one, the profile claims of vmcp's token: principal.idp_profile.email.
const SecondaryProfileClaim = "idp_profile"

// profileClaims are the claims vmcp's token copies from the provider's
// profile.
var profileClaims = []string{"email", "email_verified", "name", "groups"}

func secondaryProfile(token map[string]any) map[string]any {
	out := maps.Clone(token)
	profile := map[string]any{}
	for _, k := range profileClaims {
		if v, ok := out[k]; ok {
			profile[k] = v
			delete(out, k)
		}
	}
	delete(out, SecondaryProfileClaim)
	if len(profile) > 0 {
		out[SecondaryProfileClaim] = profile
	}
	return out
}

// claimsFunc resolves the claims policies see ([PolicyClaims]), reading
// the caller's upstream identity from the authorization server's grant.
func (a *App) claimsFunc() frontend.ClaimsFunc {
	az := a.cfg.IncomingAuth.AuthzConfig
	as := a.authServer
	if az.ClaimsFrom != config.ClaimsUpstream || as == nil {
		return func(_ context.Context, id *identity.Identity) (authz.Claims, error) {
			return PolicyClaims(az, id.Claims, nil), nil
		}
	}
	return func(ctx context.Context, id *identity.Identity) (authz.Claims, error) {
		if id.GrantID == "" {
			return PolicyClaims(az, id.Claims, nil), nil
		}
		g, err := as.StoredGrant(ctx, id.GrantID)
		if err != nil {
			return authz.Claims{}, fmt.Errorf("upstream grant %s: %w", id.GrantID, err)
		}
		// A user who logged in with another provider than the primary one:
		// its identity does not feed policies, only vmcp's own token does.
		return PolicyClaims(az, id.Claims, &authz.Upstream{Provider: g.Provider, IDTokenClaims: g.IDTokenClaims,
			UserinfoClaims: g.UserinfoClaims, AccessTokenClaims: g.AccessTokenClaims}), nil
	}
}
