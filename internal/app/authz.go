package app

import (
	"context"
	"errors"
	"fmt"
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

// policyClaims is the claims policy of az (see [authz.ClaimsPolicy]).
func policyClaims(az *config.AuthzConfig) authz.ClaimsPolicy {
	return authz.ClaimsPolicy{FromUpstream: az.ClaimsFrom == config.ClaimsUpstream, PrimaryProvider: az.PrimaryUpstreamProvider}
}

// PolicyClaims resolves the claims policies see under az, for `vmcp authz
// explain`, as the gateway does ([authz.ClaimsPolicy.Claims]).
func PolicyClaims(az *config.AuthzConfig, token map[string]any, up *authz.Upstream) authz.Claims {
	return policyClaims(az).Claims(token, up)
}

// claimsFunc resolves the claims policies see ([authz.ClaimsPolicy]), reading
// the caller's upstream identity from the authorization server's grant.
func (a *App) claimsFunc() frontend.ClaimsFunc {
	policy := policyClaims(a.cfg.IncomingAuth.AuthzConfig)
	as := a.authServer
	if !policy.FromUpstream || as == nil {
		return func(_ context.Context, id *identity.Identity) (authz.Claims, error) {
			return policy.Claims(id.Claims, nil), nil
		}
	}
	return func(ctx context.Context, id *identity.Identity) (authz.Claims, error) {
		if id.GrantID == "" {
			return policy.Claims(id.Claims, nil), nil
		}
		g, err := as.StoredGrant(ctx, id.GrantID)
		if err != nil {
			return authz.Claims{}, fmt.Errorf("upstream grant %s: %w", id.GrantID, err)
		}
		// A user who logged in with another provider than the primary one:
		// its identity does not feed policies, only vmcp's own token does.
		return policy.Claims(id.Claims, &authz.Upstream{Provider: g.Provider, IDTokenClaims: g.IDTokenClaims,
			UserinfoClaims: g.UserinfoClaims, AccessTokenClaims: g.AccessTokenClaims}), nil
	}
}
