package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// Labels and annotations on the objects the operator creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy; the operator's cache holds
	// only Deployments and Services that carry it.
	ManagedBy = "vmcp-operator"
	// AnnotationConfigHash on a gateway's pod template changes with its
	// configuration or any Secret it reads, so that a change rolls the pods.
	AnnotationConfigHash = "vmcp.dev/config-hash"
	// FieldOwner is the operator's server-side apply field manager.
	FieldOwner = client.FieldOwner("vmcp-operator")
)

// podUser is the user, group and fsGroup of vmcp's pods.
const podUser = 65532

// gatewayObjectName names the ConfigMap, Deployment and Service of a
// gateway; serverObjectName the Deployment and Service of an image
// MCPServer.
func gatewayObjectName(name string) string { return "vmcp-" + name }
func serverObjectName(name string) string  { return "mcp-" + name }

func selectorLabels(app, instance string) map[string]string {
	return map[string]string{LabelName: app, LabelInstance: instance}
}

func objectLabels(app, instance string) map[string]string {
	l := selectorLabels(app, instance)
	l[LabelManagedBy] = ManagedBy
	return l
}

// ownerRef makes obj owned (and controlled) by owner, so that deleting the
// owner deletes it (by the garbage collector).
func ownerRef(kind, name string, uid types.UID) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).WithKind(kind).WithName(name).WithUID(uid).
		WithController(true).WithBlockOwnerDeletion(true)
}

// configHash hashes the document and the uid and resourceVersion of every
// Secret it reads: never the Secrets' values, which the annotation would
// otherwise expose to anyone who can read Deployments.
func configHash(res *resolution) string {
	h := sha256.New()
	h.Write(res.doc)
	versions := slices.Clone(res.versions)
	slices.Sort(versions)
	for _, v := range versions {
		h.Write([]byte{0})
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// gatewayConfigMap holds the document vmcp reads.
func gatewayConfigMap(vs *v1alpha1.VirtualMCPServer, res *resolution) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(gatewayObjectName(vs.Name), vs.Namespace).
		WithLabels(objectLabels("vmcp", vs.Name)).
		WithOwnerReferences(ownerRef("VirtualMCPServer", vs.Name, vs.UID)).
		WithData(map[string]string{ConfigKey: string(res.doc)})
}

// gatewayDeployment runs vmcp on the ConfigMap, with every Secret the
// document reads mounted at SecretsDir/<name>/<key> (only those keys,
// readable by the pod's group).
func gatewayDeployment(vs *v1alpha1.VirtualMCPServer, res *resolution, image, hash string, replicas int32) *appsv1ac.DeploymentApplyConfiguration {
	name := gatewayObjectName(vs.Name)
	port := vs.Spec.Port
	if port == 0 {
		port = DefaultPort
	}
	if vs.Spec.Image != "" {
		image = vs.Spec.Image
	}
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(name).
			WithItems(corev1ac.KeyToPath().WithKey(ConfigKey).WithPath(ConfigKey))),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("config").WithMountPath(ConfigDir).WithReadOnly(true),
	}
	secretVols, secretMounts := secretVolumes(res)
	volumes, mounts = append(volumes, secretVols...), append(mounts, secretMounts...)
	args := []string{"serve", "--config", ConfigDir + "/" + ConfigKey}
	// Several pods at once during a rollout, none unavailable; but the
	// embedded store's volume is one pod's at a time (bbolt locks its file,
	// and the claim is ReadWriteOnce): the old pod goes before the new one
	// starts. Both are set in full, so that a change from one to the other
	// leaves nothing of the other behind.
	strategy := appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
		WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxUnavailable(intstr.FromInt32(0)).WithMaxSurge(intstr.FromInt32(1)))
	if needsStateVolume(vs) {
		volumes = append(volumes, corev1ac.Volume().WithName("state").
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(stateClaimName(vs.Name))))
		mounts = append(mounts, corev1ac.VolumeMount().WithName("state").WithMountPath(StateDir))
		args = append(args, "--state-dir", StateDir)
		strategy = appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)
	}
	probe := func(path string, period int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("mcp"))).
			WithPeriodSeconds(period).WithTimeoutSeconds(3).WithFailureThreshold(3)
	}
	container := corev1ac.Container().WithName("vmcp").WithImage(image).
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().WithName("mcp").WithContainerPort(port).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(corev1ac.EnvVar().WithName(config.SecretsDirEnv).WithValue(SecretsDir)).
		WithVolumeMounts(mounts...).
		WithReadinessProbe(probe("/readyz", 5)).
		WithLivenessProbe(probe("/healthz", 10)).
		WithSecurityContext(restrictedContainer())
	if r := vs.Spec.Resources; r != nil {
		container.WithResources(resources(r))
	}
	return appsv1ac.Deployment(name, vs.Namespace).
		WithLabels(objectLabels("vmcp", vs.Name)).
		WithOwnerReferences(ownerRef("VirtualMCPServer", vs.Name, vs.UID)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithStrategy(strategy).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels("vmcp", vs.Name))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(objectLabels("vmcp", vs.Name)).
				WithAnnotations(map[string]string{AnnotationConfigHash: hash}).
				WithSpec(corev1ac.PodSpec().
					WithAutomountServiceAccountToken(false).
					// The image's user (65532, distroless nonroot); the
					// mounted Secrets are readable by its group only.
					WithSecurityContext(corev1ac.PodSecurityContext().WithRunAsNonRoot(true).
						WithRunAsUser(podUser).WithRunAsGroup(podUser).WithFSGroup(podUser).
						WithFSGroupChangePolicy(corev1.FSGroupChangeOnRootMismatch).
						WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
					WithVolumes(volumes...).
					WithContainers(container))))
}

// secretVolumes mounts each Secret the document reads at
// SecretsDir/<name>, with only the keys it reads, readable by the pod's
// group.
func secretVolumes(res *resolution) ([]*corev1ac.VolumeApplyConfiguration, []*corev1ac.VolumeMountApplyConfiguration) {
	var volumes []*corev1ac.VolumeApplyConfiguration
	var mounts []*corev1ac.VolumeMountApplyConfiguration
	for i, n := range slices.Sorted(maps.Keys(res.secrets)) {
		src := corev1ac.SecretVolumeSource().WithSecretName(n).WithDefaultMode(0o440)
		for _, k := range res.secrets[n] {
			src.WithItems(corev1ac.KeyToPath().WithKey(k).WithPath(k))
		}
		vol := "secret-" + strconv.Itoa(i)
		volumes = append(volumes, corev1ac.Volume().WithName(vol).WithSecret(src))
		mounts = append(mounts, corev1ac.VolumeMount().WithName(vol).WithMountPath(SecretsDir+"/"+n).WithReadOnly(true))
	}
	return volumes, mounts
}

// gatewayService exposes the gateway's MCP port. Client-IP affinity keeps
// a client on one pod: a 2025-11-25 MCP session lives on the pod that
// created it (the authorization server's state is shared through Redis,
// sessions are not).
func gatewayService(vs *v1alpha1.VirtualMCPServer) *corev1ac.ServiceApplyConfiguration {
	port := vs.Spec.Port
	if port == 0 {
		port = DefaultPort
	}
	svc := corev1ac.ServiceSpec().
		WithSelector(selectorLabels("vmcp", vs.Name)).
		WithSessionAffinity(corev1.ServiceAffinityClientIP).
		WithPorts(corev1ac.ServicePort().WithName("mcp").WithPort(port).WithTargetPort(intstr.FromString("mcp")).WithProtocol(corev1.ProtocolTCP))
	if vs.Spec.ServiceType != "" {
		svc.WithType(vs.Spec.ServiceType)
	}
	return corev1ac.Service(gatewayObjectName(vs.Name), vs.Namespace).
		WithLabels(objectLabels("vmcp", vs.Name)).
		WithOwnerReferences(ownerRef("VirtualMCPServer", vs.Name, vs.UID)).
		WithSpec(svc)
}

// serverDeployment runs an image MCPServer.
func serverDeployment(s *v1alpha1.MCPServer) *appsv1ac.DeploymentApplyConfiguration {
	port := s.Spec.Port
	if port == 0 {
		port = DefaultServerPort
	}
	container := corev1ac.Container().WithName("mcp").WithImage(s.Spec.Image).
		WithArgs(s.Spec.Args...).
		WithPorts(corev1ac.ContainerPort().WithName("mcp").WithContainerPort(port).WithProtocol(corev1.ProtocolTCP))
	for _, e := range s.Spec.Env {
		container.WithEnv(applyConfig[corev1ac.EnvVarApplyConfiguration](e))
	}
	if r := s.Spec.Resources; r != nil {
		container.WithResources(resources(r))
	}
	return appsv1ac.Deployment(serverObjectName(s.Name), s.Namespace).
		WithLabels(objectLabels("mcp-server", s.Name)).
		WithOwnerReferences(ownerRef("MCPServer", s.Name, s.UID)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels("mcp-server", s.Name))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(objectLabels("mcp-server", s.Name)).
				WithSpec(corev1ac.PodSpec().WithAutomountServiceAccountToken(false).WithContainers(container))))
}

// serverService exposes an image MCPServer's port.
func serverService(s *v1alpha1.MCPServer) *corev1ac.ServiceApplyConfiguration {
	port := s.Spec.Port
	if port == 0 {
		port = DefaultServerPort
	}
	return corev1ac.Service(serverObjectName(s.Name), s.Namespace).
		WithLabels(objectLabels("mcp-server", s.Name)).
		WithOwnerReferences(ownerRef("MCPServer", s.Name, s.UID)).
		WithSpec(corev1ac.ServiceSpec().
			WithSelector(selectorLabels("mcp-server", s.Name)).
			WithPorts(corev1ac.ServicePort().WithName("mcp").WithPort(port).WithTargetPort(intstr.FromString("mcp")).WithProtocol(corev1.ProtocolTCP)))
}

func restrictedContainer() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))
}

// applyConfig converts an API value to its apply configuration, which has
// the same JSON form.
func applyConfig[T any](v any) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // API types always marshal
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err) // apply configurations mirror the API types
	}
	return &out
}

func resources(r *corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	return applyConfig[corev1ac.ResourceRequirementsApplyConfiguration](r)
}

// foreign returns the first of the objects named name in namespace ns
// (kinds of objs) that exists and is not controlled by owner: applying
// over it would take over someone else's object. It reads the API server
// (r is uncached), since the cache holds only the operator's own objects.
func foreign(ctx context.Context, r client.Reader, owner client.Object, ns, name string, objs ...client.Object) (client.Object, error) {
	for _, o := range objs {
		err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, o)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !metav1.IsControlledBy(o, owner) {
			return o, nil
		}
	}
	return nil, nil
}

// kindOf names an object's kind for messages.
func kindOf(o client.Object) string {
	t := fmt.Sprintf("%T", o)
	return t[strings.LastIndex(t, ".")+1:]
}
