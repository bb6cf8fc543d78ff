package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// What the operator gives the embedded store (storage.type embedded, the
// default, with an authorization server): a PersistentVolumeClaim of its
// own, mounted at StateDir, one pod at a time (bbolt locks its file).
const (
	// StateDir is where the state volume is mounted; vmcp serve gets it as
	// --state-dir.
	StateDir = "/var/lib/vmcp"
	// DefaultStateVolumeSize is the claim's request when
	// spec.stateVolume.size is not set: the store holds a few KiB per
	// user and registered client.
	DefaultStateVolumeSize = "1Gi"
)

// stateClaimName names a gateway's state volume claim.
func stateClaimName(name string) string { return gatewayObjectName(name) + "-state" }

// usesAuthServer reports whether the gateway runs an authorization server,
// the only part of vmcp that keeps state in storage.
func usesAuthServer(vs *v1alpha1.VirtualMCPServer) bool { return vs.Spec.AuthServerConfig != nil }

// storageType is the gateway's spec.storage.type, defaulted as vmcp does.
func storageType(vs *v1alpha1.VirtualMCPServer) string {
	if s := vs.Spec.Storage; s != nil && s.Type != "" {
		return s.Type
	}
	return config.StorageEmbedded
}

// needsStateVolume reports whether the gateway's pods mount a state
// volume: an authorization server with the embedded store.
func needsStateVolume(vs *v1alpha1.VirtualMCPServer) bool {
	return usesAuthServer(vs) && storageType(vs) == config.StorageEmbedded
}

// checkReplicas reports, as a blocking problem, more than one replica of
// a gateway whose authorization server keeps its state in one pod: only
// Redis shares it. Without an authorization server nothing is stored, and
// replicas differ only in their 2025-11-25 MCP sessions, which the
// Service's client-IP affinity keeps on one pod, as with Redis.
func checkReplicas(vs *v1alpha1.VirtualMCPServer, res *resolution, replicas int32) {
	if replicas <= 1 || !usesAuthServer(vs) || storageType(vs) == config.StorageRedis {
		return
	}
	var why string
	switch {
	case storageType(vs) == config.StorageMemory:
		why = "spec.storage.type is memory: each pod would keep its own registered clients, tokens and logins"
	case vs.Spec.Storage == nil || vs.Spec.Storage.Type == "":
		why = "spec.storage.type is embedded (the default): the authorization server's registered clients, tokens and logins are in one database file on one volume, which one pod at a time can open"
	default:
		why = "spec.storage.type is embedded: the authorization server's registered clients, tokens and logins are in one database file on one volume, which one pod at a time can open"
	}
	res.add(v1alpha1.ConditionReady, v1alpha1.ReasonSharedStateRequired, true,
		"spec.replicas is %d, but %s, so a client would lose its registration or tokens whenever a request reached another pod: "+
			"set spec.storage.type: redis with spec.storage.redis (addr, or sentinel) and spec.storage.encryptionKeyRefs to share them between replicas, or set spec.replicas: 1",
		replicas, why)
}

// storageDefaults fills in what the operator decides of the document's
// storage: with Redis, a key prefix that names the namespace too, so that
// gateways of the same name in two namespaces sharing a Redis keep apart
// (vmcp's own default is vmcp:<name>:).
func (rs *resolver) storageDefaults() {
	st, _ := rs.doc["storage"].(map[string]any)
	if typ, _ := st["type"].(string); typ != config.StorageRedis {
		return
	}
	r, _ := st["redis"].(map[string]any)
	if r == nil {
		return // an error vmcp's rules report
	}
	if p, _ := r["keyPrefix"].(string); p == "" {
		r["keyPrefix"] = "vmcp:" + rs.vs.Namespace + ":" + rs.vs.Name + ":"
	}
}

// checkStateClaim looks at the gateway's existing state volume claim: one
// that is not the gateway's is a NameTaken problem, and one whose
// StorageClass differs from spec.stateVolume.storageClassName (which a
// claim cannot change) an Invalid one. It returns the claim (nil if there
// is none yet). r reads the API server (the cache holds only the
// operator's claims).
func checkStateClaim(ctx context.Context, r client.Reader, vs *v1alpha1.VirtualMCPServer, res *resolution) (*corev1.PersistentVolumeClaim, error) {
	name := stateClaimName(vs.Name)
	var pvc corev1.PersistentVolumeClaim
	err := r.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: name}, &pvc)
	switch {
	case kerrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(&pvc, vs):
		res.add(v1alpha1.ConditionReady, v1alpha1.ReasonNameTaken, true,
			"PersistentVolumeClaim %s already exists and is not this gateway's (or is still being deleted with a previous gateway of this name): delete it, or give the VirtualMCPServer another name", name)
		return nil, nil
	}
	want := ""
	if v := vs.Spec.StateVolume; v != nil && v.StorageClassName != nil {
		want = *v.StorageClassName
	}
	if have := pvc.Spec.StorageClassName; want != "" && (have == nil || *have != want) {
		now, fix := "no StorageClass", "remove it"
		if have != nil {
			now, fix = "StorageClass "+*have, "set it back to "+*have
		}
		res.add(v1alpha1.ConditionReady, v1alpha1.ReasonInvalid, true,
			"spec.stateVolume.storageClassName is %s, but PersistentVolumeClaim %s has %s, which a claim cannot change: "+
				"%s, or delete the claim (kubectl delete pvc -n %s %s; every login it holds is lost) to have it made again",
			want, name, now, fix, vs.Namespace, name)
	}
	return &pvc, nil
}

// stateClaim is the embedded store's PersistentVolumeClaim. Its request is
// spec.stateVolume.size, but never less than what the existing claim has
// (which may have grown): a claim cannot shrink. Its class is
// spec.stateVolume.storageClassName, else the existing claim's: a claim's
// class cannot change (checkStateClaim reports a different one).
func stateClaim(vs *v1alpha1.VirtualMCPServer, existing *corev1.PersistentVolumeClaim) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	size := resource.MustParse(DefaultStateVolumeSize)
	var class *string
	if v := vs.Spec.StateVolume; v != nil {
		if v.Size != nil {
			size = *v.Size
		}
		class = v.StorageClassName
	}
	if existing != nil {
		if have, ok := existing.Spec.Resources.Requests[corev1.ResourceStorage]; ok && have.Cmp(size) > 0 {
			size = have
		}
		if class == nil {
			class = existing.Spec.StorageClassName // unset in the spec now: keep it, it cannot change
		}
	}
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: size}))
	if class != nil {
		spec.WithStorageClassName(*class)
	}
	return corev1ac.PersistentVolumeClaim(stateClaimName(vs.Name), vs.Namespace).
		WithLabels(objectLabels("vmcp", vs.Name)).
		WithOwnerReferences(ownerRef("VirtualMCPServer", vs.Name, vs.UID)).
		WithSpec(spec)
}

// claimWaiting explains a state volume claim that is not bound, for the
// Ready condition of a gateway with no pod available; "" if it is bound.
func claimWaiting(vs *v1alpha1.VirtualMCPServer, pvc *corev1.PersistentVolumeClaim) string {
	if pvc == nil || pvc.Status.Phase == corev1.ClaimBound {
		return ""
	}
	phase := pvc.Status.Phase
	if phase == "" {
		phase = corev1.ClaimPending
	}
	return fmt.Sprintf("PersistentVolumeClaim %s is %s (kubectl describe pvc -n %s %s; without a default StorageClass set spec.stateVolume.storageClassName)",
		pvc.Name, phase, vs.Namespace, pvc.Name)
}
