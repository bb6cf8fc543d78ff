package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// GatewayReconciler reconciles VirtualMCPServers.
type GatewayReconciler struct {
	Client client.Client
	// Reader reads the API server directly (the manager's APIReader).
	Reader client.Reader
	// Image is the vmcp image of gateways that do not name one.
	Image string
}

// +kubebuilder:rbac:groups=vmcp.dev,resources=virtualmcpservers;mcpgroups;mcpservers;mcpoidcconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=vmcp.dev,resources=virtualmcpservers/status;mcpgroups/status;mcpservers/status;mcpoidcconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile resolves a VirtualMCPServer; if its configuration is valid it
// applies the ConfigMap, Deployment and Service, and in any case it
// reports what it found in the status.
func (r *GatewayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var vs v1alpha1.VirtualMCPServer
	if err := r.Client.Get(ctx, req.NamespacedName, &vs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !vs.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the owned objects go with it
	}
	res, err := resolve(ctx, r.Client, &vs)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("resolving %s: %w", req, err)
	}
	replicas := int32(1)
	if vs.Spec.Replicas != nil {
		replicas = *vs.Spec.Replicas
	}
	checkReplicas(&vs, res, replicas)
	var claim *corev1.PersistentVolumeClaim
	if !res.blocked() {
		o, err := foreign(ctx, r.Reader, &vs, vs.Namespace, gatewayObjectName(vs.Name), &corev1.ConfigMap{}, &appsv1.Deployment{}, &corev1.Service{})
		if err != nil {
			return ctrl.Result{}, err
		}
		if o != nil {
			res.add(v1alpha1.ConditionReady, v1alpha1.ReasonNameTaken, true,
				"%s %s already exists and is not this gateway's: delete or rename it, or give the VirtualMCPServer another name", kindOf(o), o.GetName())
		}
	}
	if !res.blocked() && needsStateVolume(&vs) {
		if claim, err = checkStateClaim(ctx, r.Reader, &vs, res); err != nil {
			return ctrl.Result{}, err
		}
	}
	hash := ""
	if !res.blocked() {
		hash = configHash(res)
		if err := r.apply(ctx, &vs, res, claim, hash, replicas); err != nil {
			// Say why in the status too (a policy ConfigMap too large
			// for the generated one, say), and retry with backoff.
			res.add(v1alpha1.ConditionReady, v1alpha1.ReasonApplyFailed, true, "%v", err)
			return ctrl.Result{}, errors.Join(err, r.updateStatus(ctx, &vs, res, "", replicas))
		}
		log.FromContext(ctx).V(1).Info("applied", "hash", hash, "backends", len(res.backends))
	}
	var d appsv1.Deployment
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: gatewayObjectName(vs.Name)}, &d)
	// The cache does not see objects that are not the operator's, so a
	// name taken by one is looked at again later, not when it goes.
	var result ctrl.Result
	if slices.ContainsFunc(res.problems, func(p problem) bool { return p.reason == v1alpha1.ReasonNameTaken }) {
		result.RequeueAfter = nameTakenRetry
	}
	switch {
	case kerrors.IsNotFound(err):
	case err != nil:
		return ctrl.Result{}, err
	default:
		vs.Status.AvailableReplicas = d.Status.AvailableReplicas
	}
	res.waiting = claimWaiting(&vs, claim)
	return result, r.updateStatus(ctx, &vs, res, hash, replicas)
}

// nameTakenRetry is how often a gateway or server whose object names are
// taken by someone else's objects is looked at again.
const nameTakenRetry = 30 * time.Second

func (r *GatewayReconciler) apply(ctx context.Context, vs *v1alpha1.VirtualMCPServer, res *resolution, claim *corev1.PersistentVolumeClaim, hash string, replicas int32) error {
	if err := r.Client.Apply(ctx, gatewayConfigMap(vs, res), FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying the ConfigMap: %w", err)
	}
	if needsStateVolume(vs) {
		if err := r.Client.Apply(ctx, stateClaim(vs, claim), FieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("applying the PersistentVolumeClaim: %w", err)
		}
	}
	if needsStateVolume(vs) {
		if err := r.dropRollingUpdate(ctx, vs); err != nil {
			return fmt.Errorf("changing the Deployment's strategy to Recreate: %w", err)
		}
	}
	if err := r.Client.Apply(ctx, gatewayDeployment(vs, res, r.Image, hash, replicas), FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying the Deployment: %w", err)
	}
	if err := r.Client.Apply(ctx, gatewayService(vs), FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying the Service: %w", err)
	}
	return nil
}

// dropRollingUpdate makes an existing Deployment's strategy Recreate by a
// merge patch if it still has rolling update parameters: an apply of
// Recreate removes the operator's own, but not the API server's defaults
// (in a Deployment that an operator before spec.storage made) or someone
// else's, and the API server refuses Recreate with them.
func (r *GatewayReconciler) dropRollingUpdate(ctx context.Context, vs *v1alpha1.VirtualMCPServer) error {
	var d appsv1.Deployment
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: gatewayObjectName(vs.Name)}, &d)
	if err != nil || d.Spec.Strategy.RollingUpdate == nil {
		return client.IgnoreNotFound(err)
	}
	patch := []byte(`{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`)
	return r.Client.Patch(ctx, &d, client.RawPatch(types.MergePatchType, patch), FieldOwner)
}

// updateStatus writes the conditions and what was applied, if they
// changed.
func (r *GatewayReconciler) updateStatus(ctx context.Context, vs *v1alpha1.VirtualMCPServer, res *resolution, hash string, replicas int32) error {
	before := vs.DeepCopy()
	st := &vs.Status
	st.ObservedGeneration = vs.Generation
	if hash != "" {
		st.ConfigHash = hash
		st.URL = serviceURL(vs)
		st.Backends = res.backends
		st.BackendCount = int32(len(res.backends))
		st.Secrets = slices.Sorted(maps.Keys(res.secrets))
	}
	for _, c := range gatewayConditions(vs, res, hash != "", replicas) {
		c.ObservedGeneration = vs.Generation
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if equality.Semantic.DeepEqual(before.Status, vs.Status) {
		return nil
	}
	return r.Client.Status().Patch(ctx, vs, client.MergeFrom(before))
}

// gatewayConditions turns the problems found into the four conditions.
func gatewayConditions(vs *v1alpha1.VirtualMCPServer, res *resolution, applied bool, replicas int32) []metav1.Condition {
	byCond := func(cond string) (msgs []string, reason string) {
		for _, p := range res.problems {
			if p.cond == cond {
				if reason == "" {
					reason = p.reason
				}
				msgs = append(msgs, p.msg)
			}
		}
		return msgs, reason
	}
	cond := func(typ, okReason, okMsg string) metav1.Condition {
		msgs, reason := byCond(typ)
		if len(msgs) == 0 {
			return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: okReason, Message: okMsg}
		}
		return metav1.Condition{Type: typ, Status: metav1.ConditionFalse, Reason: reason, Message: joinMessages(msgs)}
	}
	azReason, azMsg := v1alpha1.ReasonValid, "the Cedar policies are valid"
	if in := vs.Spec.IncomingAuth; in == nil || in.AuthzConfig == nil {
		azReason, azMsg = v1alpha1.ReasonNotConfigured, "no incomingAuth.authzConfig: every authenticated caller may list and call everything"
	}
	conds := []metav1.Condition{
		cond(v1alpha1.ConditionBackendsDiscovered, v1alpha1.ReasonDiscovered, res.found),
		cond(v1alpha1.ConditionAuthConfigured, v1alpha1.ReasonValid, authSummary(vs, res)),
		cond(v1alpha1.ConditionAuthzConfigured, azReason, azMsg),
	}
	conds = append(conds, readyCondition(vs, res, applied, replicas))
	return conds
}

func readyCondition(vs *v1alpha1.VirtualMCPServer, res *resolution, applied bool, replicas int32) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	var blocking []string
	reason := v1alpha1.ReasonConfigInvalid
	for _, p := range res.problems {
		if p.blocking {
			blocking = append(blocking, p.msg)
			if p.cond == v1alpha1.ConditionReady && reason == v1alpha1.ReasonConfigInvalid {
				reason = p.reason
			}
		}
	}
	switch {
	case !applied && reason == v1alpha1.ReasonApplyFailed:
		c.Reason = reason
		c.Message = "applying failed, retrying (the ConfigMap may be newer than the pods): " + joinMessages(blocking)
		return c
	case !applied:
		c.Reason = reason
		c.Message = "not applied (what runs, if anything, is unchanged): " + joinMessages(blocking)
		return c
	}
	for _, p := range res.problems {
		if p.cond == v1alpha1.ConditionBackendsDiscovered {
			c.Reason, c.Message = p.reason, "applied, but: "+p.msg
			return c
		}
	}
	avail := vs.Status.AvailableReplicas
	if avail < 1 {
		c.Reason = v1alpha1.ReasonUnavailable
		c.Message = fmt.Sprintf("applied; %d of %d vmcp pods available (kubectl describe deployment %s -n %s)",
			avail, replicas, gatewayObjectName(vs.Name), vs.Namespace)
		if res.waiting != "" {
			c.Message += "; " + res.waiting
		}
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonAvailable
	c.Message = fmt.Sprintf("%d of %d vmcp pods available at %s", avail, replicas, serviceURL(vs))
	return c
}

func authSummary(vs *v1alpha1.VirtualMCPServer, res *resolution) string {
	var parts []string
	in := "anonymous clients"
	if i := vs.Spec.IncomingAuth; i != nil && i.Type == config.AuthOIDC {
		in = "OIDC bearer tokens for " + res.publicURL
	}
	parts = append(parts, in)
	if as := vs.Spec.AuthServerConfig; as != nil {
		parts = append(parts, fmt.Sprintf("authorization server %s with %d upstream providers", as.Issuer, len(as.UpstreamProviders)))
	}
	if res.cfg == nil {
		parts = append(parts, "Secrets are checked once the rest of the configuration is valid")
	} else {
		parts = append(parts, fmt.Sprintf("%d Secrets mounted", len(res.secrets)))
	}
	return strings.Join(parts, "; ")
}

func joinMessages(msgs []string) string {
	m := strings.Join(msgs, "; ")
	if len(m) > maxMessage {
		m = m[:maxMessage-3] + "..."
	}
	return m
}
