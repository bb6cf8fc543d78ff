package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
)

// Field indexes of VirtualMCPServers, by what their spec names.
const (
	indexGroup      = "vmcp.dev/group"
	indexOIDCConfig = "vmcp.dev/oidcConfig"
	indexConfigMap  = "vmcp.dev/configMap"
	indexSecret     = "vmcp.dev/secret"
)

// NewScheme returns a scheme with the Kubernetes types and vmcp.dev's.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// NewManager returns a manager running the operator's reconcilers, with
// opts for what the command line decides (metrics, probes, leader
// election). image is the vmcp image of gateways that name none.
//
// Secrets and ConfigMaps are not cached (they are read from the API server
// when needed and watched as metadata only), and only the Deployments,
// Services and PersistentVolumeClaims the operator manages are.
func NewManager(cfg *rest.Config, opts ctrl.Options, image string) (ctrl.Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	opts.Scheme = scheme
	opts.Client.Cache = &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}
	managed := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	opts.Cache.ByObject = map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:            {Label: managed},
		&corev1.Service{}:               {Label: managed},
		&corev1.PersistentVolumeClaim{}: {Label: managed},
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := Setup(mgr, image); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Setup registers the field indexes and the reconcilers with mgr.
func Setup(mgr ctrl.Manager, image string) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	vs := &v1alpha1.VirtualMCPServer{}
	indexes := map[string]func(*v1alpha1.VirtualMCPServer) []string{
		indexGroup: func(v *v1alpha1.VirtualMCPServer) []string { return nonEmpty(groupName(v)) },
		indexOIDCConfig: func(v *v1alpha1.VirtualMCPServer) []string {
			if in := v.Spec.IncomingAuth; in != nil && in.OIDCConfigRef != nil {
				return nonEmpty(in.OIDCConfigRef.Name)
			}
			return nil
		},
		indexConfigMap: func(v *v1alpha1.VirtualMCPServer) []string {
			if in := v.Spec.IncomingAuth; in != nil && in.AuthzConfig != nil && in.AuthzConfig.ConfigMap != nil {
				return nonEmpty(in.AuthzConfig.ConfigMap.Name)
			}
			return nil
		},
		indexSecret: func(v *v1alpha1.VirtualMCPServer) []string { return secretNames(&v.Spec) },
	}
	for name, f := range indexes {
		err := idx.IndexField(ctx, vs, name, func(o client.Object) []string { return f(o.(*v1alpha1.VirtualMCPServer)) })
		if err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	c := mgr.GetClient()
	m := &mapper{c: c}
	gw := &GatewayReconciler{Client: c, Reader: mgr.GetAPIReader(), Image: image}
	err := ctrl.NewControllerManagedBy(mgr).Named("virtualmcpserver").
		For(&v1alpha1.VirtualMCPServer{}).
		Owns(&corev1.ConfigMap{}, builder.OnlyMetadata).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Watches(&v1alpha1.MCPGroup{}, handler.EnqueueRequestsFromMapFunc(m.gatewaysBy(indexGroup))).
		// A server's change may add, move or remove a backend of any
		// gateway of its namespace.
		Watches(&v1alpha1.MCPServer{}, handler.EnqueueRequestsFromMapFunc(m.allIn(newGatewayList))).
		Watches(&v1alpha1.MCPOIDCConfig{}, handler.EnqueueRequestsFromMapFunc(m.gatewaysBy(indexOIDCConfig))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(m.gatewaysBy(indexConfigMap)), builder.OnlyMetadata).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(m.gatewaysBySecret), builder.OnlyMetadata).
		Complete(gw)
	if err != nil {
		return err
	}
	err = ctrl.NewControllerManagedBy(mgr).Named("mcpserver").
		For(&v1alpha1.MCPServer{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Watches(&v1alpha1.MCPGroup{}, handler.EnqueueRequestsFromMapFunc(m.allIn(func() client.ObjectList { return &v1alpha1.MCPServerList{} }))).
		Complete(&ServerReconciler{Client: c, Reader: mgr.GetAPIReader()})
	if err != nil {
		return err
	}
	newGroupList := func() client.ObjectList { return &v1alpha1.MCPGroupList{} }
	err = ctrl.NewControllerManagedBy(mgr).Named("mcpgroup").
		For(&v1alpha1.MCPGroup{}).
		Watches(&v1alpha1.MCPServer{}, handler.EnqueueRequestsFromMapFunc(m.allIn(newGroupList))).
		Watches(&v1alpha1.VirtualMCPServer{}, handler.EnqueueRequestsFromMapFunc(m.allIn(newGroupList))).
		Complete(&GroupReconciler{Client: c})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("mcpoidcconfig").
		For(&v1alpha1.MCPOIDCConfig{}).
		Watches(&v1alpha1.VirtualMCPServer{}, handler.EnqueueRequestsFromMapFunc(m.allIn(func() client.ObjectList { return &v1alpha1.MCPOIDCConfigList{} }))).
		Complete(&OIDCConfigReconciler{Client: c})
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// secretNames returns the names of the Secrets an API value references
// (every SecretRef in it).
func secretNames(v any) []string {
	var names []string
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			if r, ok := v.Interface().(v1alpha1.SecretRef); ok {
				if r.Name != "" && !slices.Contains(names, r.Name) {
					names = append(names, r.Name)
				}
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(v))
	slices.Sort(names)
	return names
}

// mapper finds the objects that depend on a changed one.
type mapper struct{ c client.Reader }

// requests turns a list's items into reconcile requests.
func requests(list client.ObjectList) []reconcile.Request {
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(items))
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return reqs
}

// list lists the objects of newList's kind in the namespace of o that
// match opts, as requests.
func (m *mapper) list(ctx context.Context, o client.Object, newList func() client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	list := newList()
	if err := m.c.List(ctx, list, append(opts, client.InNamespace(o.GetNamespace()))...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing", "kind", fmt.Sprintf("%T", list))
		return nil
	}
	return requests(list)
}

// allIn returns a map function enqueueing every object of newList's kind
// in the changed object's namespace.
func (m *mapper) allIn(newList func() client.ObjectList) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request { return m.list(ctx, o, newList) }
}

func newGatewayList() client.ObjectList { return &v1alpha1.VirtualMCPServerList{} }

// gatewaysBy returns a map function enqueueing the gateways whose spec
// names the object in index.
func (m *mapper) gatewaysBy(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return m.list(ctx, o, newGatewayList, client.MatchingFields{index: o.GetName()})
	}
}

// gatewaysBySecret enqueues the gateways that read a Secret: named in
// their own spec, in the outgoingAuth of an MCPServer of their namespace,
// or in their MCPOIDCConfig.
func (m *mapper) gatewaysBySecret(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := m.gatewaysBy(indexSecret)(ctx, o)
	var servers v1alpha1.MCPServerList
	if err := m.c.List(ctx, &servers, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing MCPServers")
		return reqs
	}
	for _, s := range servers.Items {
		if slices.Contains(secretNames(&s.Spec), o.GetName()) {
			return append(reqs, m.list(ctx, o, newGatewayList)...)
		}
	}
	var configs v1alpha1.MCPOIDCConfigList
	if err := m.c.List(ctx, &configs, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing MCPOIDCConfigs")
		return reqs
	}
	for _, oc := range configs.Items {
		if slices.Contains(secretNames(&oc.Spec), o.GetName()) {
			reqs = append(reqs, m.gatewaysBy(indexOIDCConfig)(ctx, &oc)...)
		}
	}
	return reqs
}
