package controller

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
)

// GroupReconciler keeps an MCPGroup's status listing its servers and the
// gateways that serve it.
type GroupReconciler struct {
	Client client.Client
}

// Reconcile updates the group's status.
func (r *GroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var g v1alpha1.MCPGroup
	if err := r.Client.Get(ctx, req.NamespacedName, &g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var servers v1alpha1.MCPServerList
	if err := r.Client.List(ctx, &servers, client.InNamespace(g.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	var gateways v1alpha1.VirtualMCPServerList
	if err := r.Client.List(ctx, &gateways, client.InNamespace(g.Namespace), client.MatchingFields{indexGroup: g.Name}); err != nil {
		return ctrl.Result{}, err
	}
	before := g.DeepCopy()
	g.Status.ObservedGeneration = g.Generation
	g.Status.Servers, g.Status.Gateways = nil, nil
	for _, s := range servers.Items {
		if s.Spec.GroupRef != nil && s.Spec.GroupRef.Name == g.Name {
			g.Status.Servers = append(g.Status.Servers, s.Name)
		}
	}
	for _, vs := range gateways.Items {
		g.Status.Gateways = append(g.Status.Gateways, vs.Name)
	}
	slices.Sort(g.Status.Servers)
	slices.Sort(g.Status.Gateways)
	g.Status.ServerCount = int32(len(g.Status.Servers))
	if equality.Semantic.DeepEqual(before.Status, g.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Client.Status().Patch(ctx, &g, client.MergeFrom(before))
}

// OIDCConfigReconciler keeps an MCPOIDCConfig's status listing the
// gateways that reference it.
type OIDCConfigReconciler struct {
	Client client.Client
}

// Reconcile updates the config's status.
func (r *OIDCConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var oc v1alpha1.MCPOIDCConfig
	if err := r.Client.Get(ctx, req.NamespacedName, &oc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var gateways v1alpha1.VirtualMCPServerList
	if err := r.Client.List(ctx, &gateways, client.InNamespace(oc.Namespace), client.MatchingFields{indexOIDCConfig: oc.Name}); err != nil {
		return ctrl.Result{}, err
	}
	before := oc.DeepCopy()
	oc.Status.ObservedGeneration = oc.Generation
	oc.Status.Gateways = nil
	for _, vs := range gateways.Items {
		oc.Status.Gateways = append(oc.Status.Gateways, vs.Name)
	}
	slices.Sort(oc.Status.Gateways)
	if equality.Semantic.DeepEqual(before.Status, oc.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Client.Status().Patch(ctx, &oc, client.MergeFrom(before))
}
