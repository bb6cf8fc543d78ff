package controller_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
)

// decodeObjects reads the objects of a multi-document YAML stream.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// readObjects reads the objects of a YAML file, with edit applied to each
// (nil: as they are).
func readObjects(t *testing.T, path string, edit func(*unstructured.Unstructured)) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if edit != nil {
		for _, o := range objs {
			edit(o)
		}
	}
	return objs
}

// create creates objs in namespace ns, as `kubectl apply -n ns` would.
func create(t *testing.T, ns string, objs ...*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		o.SetNamespace(ns)
		if err := env.client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// without returns objs less those of kind and name.
func without(objs []*unstructured.Unstructured, kind, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != kind || o.GetName() != name {
			out = append(out, o)
		}
	}
	return out
}

// find returns the object of kind and name in objs, failing the test if
// there is none.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

func set(t *testing.T, o *unstructured.Unstructured, value any, path ...string) {
	t.Helper()
	if err := unstructured.SetNestedField(o.Object, value, path...); err != nil {
		t.Fatal(err)
	}
}

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// get fetches the object of type T named name in namespace ns.
func get[T any, P interface {
	*T
	client.Object
}](t *testing.T, ns, name string) P {
	t.Helper()
	o := P(new(T))
	if err := env.client.Get(context.Background(), key(ns, name), o); err != nil {
		t.Fatal(err)
	}
	return o
}

// gateway fetches a VirtualMCPServer.
func gateway(t *testing.T, ns, name string) *v1alpha1.VirtualMCPServer {
	t.Helper()
	return get[v1alpha1.VirtualMCPServer](t, ns, name)
}

// waitCondition waits until the condition typ of the object (a
// VirtualMCPServer or an MCPServer, of the current generation) has status
// and its message contains every string of want; it returns the condition.
func waitCondition(t *testing.T, obj client.Object, typ string, status metav1.ConditionStatus, want ...string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	eventually(t, fmt.Sprintf("%s %s: condition %s=%s with %q", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), typ, status, want), func() (bool, string) {
		if err := env.client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *v1alpha1.VirtualMCPServer:
			conds = o.Status.Conditions
		case *v1alpha1.MCPServer:
			conds = o.Status.Conditions
		}
		c := meta.FindStatusCondition(conds, typ)
		if c == nil {
			return false, "no such condition yet"
		}
		got = *c
		if c.Status != status || c.ObservedGeneration != obj.GetGeneration() {
			return false, fmt.Sprintf("%s (generation %d of %d): %s: %s", c.Status, c.ObservedGeneration, obj.GetGeneration(), c.Reason, c.Message)
		}
		for _, w := range want {
			if !strings.Contains(c.Message, w) {
				return false, fmt.Sprintf("message %q lacks %q", c.Message, w)
			}
		}
		return true, ""
	})
	return got
}

func secretObject(ns, name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}
