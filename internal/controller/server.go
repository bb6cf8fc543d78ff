package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
)

// ServerReconciler reconciles MCPServers: it runs image servers as a
// Deployment and a Service, and reports whether each server's group exists.
type ServerReconciler struct {
	Client client.Client
	// Reader reads the API server directly (the manager's APIReader).
	Reader client.Reader
}

// Reconcile applies or removes an image server's Deployment and Service
// and updates the status.
func (r *ServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s v1alpha1.MCPServer
	if err := r.Client.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !s.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var ready metav1.Condition
	taken, err := foreign(ctx, r.Reader, &s, s.Namespace, serverObjectName(s.Name), &appsv1.Deployment{}, &corev1.Service{})
	if err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case s.Spec.Image != "" && taken != nil:
		ready = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNameTaken,
			Message: fmt.Sprintf("%s %s already exists and is not this server's: delete or rename it, or give the MCPServer another name", kindOf(taken), taken.GetName())}
	case s.Spec.Image != "":
		if err := r.Client.Apply(ctx, serverDeployment(&s), FieldOwner, client.ForceOwnership); err != nil {
			return ctrl.Result{}, fmt.Errorf("applying the Deployment: %w", err)
		}
		if err := r.Client.Apply(ctx, serverService(&s), FieldOwner, client.ForceOwnership); err != nil {
			return ctrl.Result{}, fmt.Errorf("applying the Service: %w", err)
		}
		var d appsv1.Deployment
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: serverObjectName(s.Name)}, &d); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		ready = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonUnavailable,
			Message: fmt.Sprintf("no pod of Deployment %[1]s is available (kubectl describe deployment %[1]s -n %s)", serverObjectName(s.Name), s.Namespace)}
		if d.Status.AvailableReplicas > 0 {
			ready = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable,
				Message: "the server's pod is available"}
		}
	default:
		if err := r.removeWorkload(ctx, &s); err != nil {
			return ctrl.Result{}, err
		}
		ready = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid,
			Message: "a remote server: vmcp connects to it directly"}
	}
	group, err := r.groupCondition(ctx, &s)
	if err != nil {
		return ctrl.Result{}, err
	}
	before := s.DeepCopy()
	s.Status.ObservedGeneration = s.Generation
	s.Status.URL = serverURL(&s)
	for _, c := range []metav1.Condition{group, ready} {
		c.ObservedGeneration = s.Generation
		meta.SetStatusCondition(&s.Status.Conditions, c)
	}
	var result ctrl.Result
	if ready.Reason == v1alpha1.ReasonNameTaken {
		result.RequeueAfter = nameTakenRetry
	}
	if equality.Semantic.DeepEqual(before.Status, s.Status) {
		return result, nil
	}
	return result, r.Client.Status().Patch(ctx, &s, client.MergeFrom(before))
}

// removeWorkload deletes the Deployment and Service of a server that no
// longer has an image, if the operator made them.
func (r *ServerReconciler) removeWorkload(ctx context.Context, s *v1alpha1.MCPServer) error {
	key := types.NamespacedName{Namespace: s.Namespace, Name: serverObjectName(s.Name)}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
		err := r.Client.Get(ctx, key, obj)
		if kerrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !metav1.IsControlledBy(obj, s) {
			continue
		}
		if err := r.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// groupCondition says whether the server's group exists, and what to do
// if not.
func (r *ServerReconciler) groupCondition(ctx context.Context, s *v1alpha1.MCPServer) (metav1.Condition, error) {
	c := metav1.Condition{Type: v1alpha1.ConditionGroupRefValid, Status: metav1.ConditionFalse}
	var groups v1alpha1.MCPGroupList
	if err := r.Client.List(ctx, &groups, client.InNamespace(s.Namespace)); err != nil {
		return c, err
	}
	var names []string
	for _, g := range groups.Items {
		names = append(names, g.Name)
	}
	slices.Sort(names)
	list := "there are none: create one"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	switch {
	case s.Spec.GroupRef == nil || s.Spec.GroupRef.Name == "":
		c.Reason = v1alpha1.ReasonNoGroup
		c.Message = fmt.Sprintf("spec.groupRef is not set, so no VirtualMCPServer serves this server: set spec.groupRef.name to an MCPGroup of namespace %s (%s)", s.Namespace, list)
	case !slices.Contains(names, s.Spec.GroupRef.Name):
		c.Reason = v1alpha1.ReasonNotFound
		c.Message = fmt.Sprintf("MCPGroup %q (spec.groupRef.name) does not exist in namespace %s (MCPGroups: %s)", s.Spec.GroupRef.Name, s.Namespace, list)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonValid
		c.Message = "in MCPGroup " + s.Spec.GroupRef.Name
	}
	return c, nil
}
