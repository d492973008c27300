// Command kvvalidate runs KubeVirt's own admission of VirtualMachines, the
// code virt-api's webhooks run when a VM is created, without a KubeVirt
// installation, so that tests can prove that the VMs they make would be
// accepted:
//
//	kvvalidate [--feature-gates=G,...] [--default-arch=amd64] [--kubeconfig=FILE] [FILE...]
//
// It reads VirtualMachines as YAML or JSON (several documents to a file)
// from the FILEs, or from stdin without any, and prints each cause KubeVirt
// gives for rejecting one as "FIELD: MESSAGE" on stdout, prefixed with
// "SOURCE: " when there are several VMs. It exits 0 when every VM is
// accepted, 1 when one is not, and 2 when the input cannot be read or
// checked.
//
// Each VM goes through what KubeVirt does with a VM that is created to
// run, in its order, calling KubeVirt's own functions:
//
//  1. virt-api's VM mutating webhook (mutators.VMsMutator.Mutate);
//  2. its VM validating webhook (admitters.VMsAdmitter.Admit: the OpenAPI
//     schema, the instancetype and preference applied, the VMI defaults,
//     the feature gates, the network and the VM spec), as a user who is not
//     one of KubeVirt's service accounts;
//  3. virt-controller's making of the VMI (watch/vm.SetupVMIFromVM, the
//     auto-attached devices, the default network interface, the
//     instancetype and preference applied, the network check), leaving out
//     what depends on cluster state (changed block tracking, revisions);
//  4. virt-api's VMI mutating webhook and VMI validating webhook
//     (admitters.VMICreateAdmitter, with the network validator, as virt-api
//     runs it), as virt-controller's service account. This stage checks
//     what the VM webhook leaves to the VMI's creation, such as the
//     settings of each architecture; its causes read "VMI FIELD: MESSAGE".
//
// The cluster's configuration is KubeVirt's defaults with the given
// feature gates and default architecture.
//
// A VM that refers to an instancetype or a preference needs --kubeconfig:
// KubeVirt reads them from the cluster, through any API server that serves
// their CRDs (the test API server of internal/testcluster does). Without
// one, such a VM is an error (exit 2), not a guess.
//
// It is a module of its own so that kubevirt.io/kubevirt and its
// dependencies stay out of the project's go.mod; hack/kvvalidate.sh builds
// it once per version.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8sfield "k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	v1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	"kubevirt.io/client-go/kubecli"
	instancetypeapply "kubevirt.io/kubevirt/pkg/instancetype/apply"
	instancetypefind "kubevirt.io/kubevirt/pkg/instancetype/find"
	preferenceapply "kubevirt.io/kubevirt/pkg/instancetype/preference/apply"
	preferencefind "kubevirt.io/kubevirt/pkg/instancetype/preference/find"
	instancetypewebhooks "kubevirt.io/kubevirt/pkg/instancetype/webhooks/vm"
	netadmitter "kubevirt.io/kubevirt/pkg/network/admitter"
	netvmispec "kubevirt.io/kubevirt/pkg/network/vmispec"
	"kubevirt.io/kubevirt/pkg/testutils"
	"kubevirt.io/kubevirt/pkg/virt-api/webhooks/mutating-webhook/mutators"
	"kubevirt.io/kubevirt/pkg/virt-api/webhooks/validating-webhook/admitters"
	virtconfig "kubevirt.io/kubevirt/pkg/virt-config"
	vmwatch "kubevirt.io/kubevirt/pkg/virt-controller/watch/vm"
	"sigs.k8s.io/yaml"
)

// defaultFeatureGates are the gates the VMs of pkg/verify need: none, as
// of KubeVirt v1.8 (MultiArchitecture, which arm64 and s390x VMs on a
// cluster of another architecture once needed, is deprecated and checks
// nothing).
const defaultFeatureGates = ""

// userName is who creates the VMs: not a KubeVirt service account, which
// may set labels and annotations that others may not.
const userName = "kubectl-containerdisk"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitValid   = 0
	exitInvalid = 1
	exitInput   = 2
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvvalidate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gates := fs.String("feature-gates", defaultFeatureGates, "comma-separated KubeVirt feature gates that the cluster enables")
	arch := fs.String("default-arch", "amd64", "the cluster's default architecture (its control plane's), given to VMs that name none")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of an API server to read the instancetypes and preferences that VMs refer to from")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kvvalidate [flags] [FILE...]\n\nValidates VirtualMachines (YAML or JSON, from the FILEs or stdin) as KubeVirt's admission webhooks do.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return exitValid
	} else if err != nil {
		return exitInput
	}

	docs, err := readDocuments(fs.Args(), stdin)
	if err != nil {
		fmt.Fprintln(stderr, "kvvalidate:", err)
		return exitInput
	}
	if len(docs) == 0 {
		fmt.Fprintln(stderr, "kvvalidate: no VirtualMachine in the input")
		return exitInput
	}

	a := &admission{config: clusterConfig(*gates, *arch)}
	if *kubeconfig != "" {
		restConfig, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			fmt.Fprintln(stderr, "kvvalidate:", err)
			return exitInput
		}
		// The requests are few per VM but many VMs may come at once: no
		// client-side rate limit.
		restConfig.QPS, restConfig.Burst = -1, 0
		// No request to the API server may hang the tests.
		restConfig.Timeout = requestTimeout
		if a.client, err = kubecli.GetKubevirtClientFromRESTConfig(restConfig); err != nil {
			fmt.Fprintln(stderr, "kvvalidate:", err)
			return exitInput
		}
	}

	status := exitValid
	for _, d := range docs {
		causes, err := a.admit(context.Background(), d.json)
		if err != nil {
			fmt.Fprintf(stderr, "kvvalidate: %s: %v\n", d.source, err)
			return exitInput
		}
		for _, c := range causes {
			if len(docs) > 1 {
				fmt.Fprintf(stdout, "%s: ", d.source)
			}
			fmt.Fprintf(stdout, "%s: %s\n", c.Field, c.Message)
		}
		if len(causes) > 0 {
			status = exitInvalid
		}
	}
	return status
}

// maxInput bounds each input: VirtualMachine manifests are kilobytes.
const maxInput = 16 << 20

// requestTimeout bounds each request to the API server of --kubeconfig.
const requestTimeout = 30 * time.Second

// document is one VirtualMachine of the input, as JSON.
type document struct {
	source string // file name and, after "#", the document's number in it
	json   []byte
}

// readDocuments reads the YAML or JSON documents of the files, or of
// stdin when there are none; empty documents are skipped.
func readDocuments(files []string, stdin io.Reader) ([]document, error) {
	type input struct {
		name string
		r    io.Reader
	}
	var inputs []input
	if len(files) == 0 {
		inputs = append(inputs, input{"stdin", stdin})
	}
	for _, f := range files {
		if f == "-" {
			inputs = append(inputs, input{"stdin", stdin})
			continue
		}
		file, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		inputs = append(inputs, input{f, file})
	}
	var docs []document
	for _, in := range inputs {
		// Bounded: one byte more than the limit tells a cut input.
		lr := &io.LimitedReader{R: in.r, N: maxInput + 1}
		r := utilyaml.NewYAMLReader(bufio.NewReader(lr))
		for n := 1; ; n++ {
			raw, err := r.Read()
			if lr.N == 0 {
				return nil, fmt.Errorf("reading %s: more than %d bytes: expected VirtualMachine manifests", in.name, maxInput)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", in.name, err)
			}
			j, err := yaml.YAMLToJSON(raw)
			if err != nil {
				return nil, fmt.Errorf("reading document %d of %s: %w", n, in.name, err)
			}
			if t := bytes.TrimSpace(j); len(t) == 0 || bytes.Equal(t, []byte("null")) {
				continue
			}
			docs = append(docs, document{source: fmt.Sprintf("%s#%d", in.name, n), json: j})
		}
	}
	return docs, nil
}

// clusterConfig is KubeVirt's default configuration with the given
// feature gates, on a cluster whose control plane is of arch.
func clusterConfig(gates, arch string) *virtconfig.ClusterConfig {
	var fgs []string
	for _, g := range strings.Split(gates, ",") {
		if g = strings.TrimSpace(g); g != "" {
			fgs = append(fgs, g)
		}
	}
	kv := &v1.KubeVirt{
		ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: "kubevirt"},
		Spec: v1.KubeVirtSpec{Configuration: v1.KubeVirtConfiguration{
			DeveloperConfiguration: &v1.DeveloperConfiguration{FeatureGates: fgs},
		}},
		Status: v1.KubeVirtStatus{DefaultArchitecture: arch},
	}
	config, _, _ := testutils.NewFakeClusterConfigUsingKVWithCPUArch(kv, arch)
	return config
}

// admission runs virt-api's webhooks on VMs and on the VMIs that
// virt-controller makes of them.
type admission struct {
	config *virtconfig.ClusterConfig
	// client reaches the cluster the instancetypes and preferences are
	// read from; nil without --kubeconfig.
	client kubecli.KubevirtClient
}

// admit returns the causes for which KubeVirt rejects the creation of the
// VM that raw holds, or an error when raw is no VirtualMachine or cannot
// be checked.
func (a *admission) admit(ctx context.Context, raw []byte) ([]metav1.StatusCause, error) {
	var vm v1.VirtualMachine
	if err := json.Unmarshal(raw, &vm); err != nil {
		return nil, fmt.Errorf("decoding a VirtualMachine: %w", err)
	}
	if gvk := vm.GroupVersionKind(); gvk != v1.VirtualMachineGroupVersionKind {
		return nil, fmt.Errorf("apiVersion %q kind %q: expected a %s VirtualMachine", vm.APIVersion, vm.Kind, v1.GroupVersion)
	}
	if a.client == nil {
		if m := vm.Spec.Instancetype; m != nil {
			return nil, fmt.Errorf("VM %s refers to %s %s, which KubeVirt reads from the cluster: give --kubeconfig of an API server that has it", vm.Name, kindOr(m.Kind, "VirtualMachineClusterInstancetype"), m.Name)
		}
		if m := vm.Spec.Preference; m != nil {
			return nil, fmt.Errorf("VM %s refers to %s %s, which KubeVirt reads from the cluster: give --kubeconfig of an API server that has it", vm.Name, kindOr(m.Kind, "VirtualMachineClusterPreference"), m.Name)
		}
	}
	namespace := vm.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	review := func(object []byte, user string) *admissionv1.AdmissionReview {
		return createReview(v1.VirtualMachineGroupVersionKind, "virtualmachines", vm.Name, namespace, user, object)
	}

	// virt-api's mutating webhook runs first; the validating one sees
	// what it made, which is what the API server stores.
	mutated := mutators.NewVMsMutator(a.config, a.client).Mutate(review(raw, userName))
	if causes := rejected(mutated); len(causes) > 0 {
		return causes, nil
	}
	raw, err := applyPatch(raw, mutated)
	if err != nil {
		return nil, err
	}
	admitter := &admitters.VMsAdmitter{
		VirtClient:              a.client,
		ClusterConfig:           a.config,
		KubeVirtServiceAccounts: map[string]struct{}{},
	}
	if a.client != nil {
		admitter.InstancetypeAdmitter = instancetypewebhooks.NewAdmitter(a.client)
	} else {
		// The VM refers to no instancetype or preference (checked above):
		// there is nothing to apply.
		admitter.InstancetypeAdmitter = instancetypewebhooks.NewAdmitterStub()
	}
	if causes := rejected(admitter.Admit(ctx, review(raw, userName))); len(causes) > 0 {
		return causes, nil
	}

	// A VM that is admitted may still never run: virt-controller makes its
	// VMI, which virt-api's VMI webhooks check further (per architecture,
	// for instance).
	stored := v1.VirtualMachine{}
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, fmt.Errorf("decoding the mutated VirtualMachine: %w", err)
	}
	vmi, causes := a.newVMI(&stored)
	if len(causes) > 0 {
		return causes, nil
	}
	vmiRaw, err := json.Marshal(vmi)
	if err != nil {
		return nil, err
	}
	vmiReview := func(object []byte) *admissionv1.AdmissionReview {
		return createReview(v1.VirtualMachineInstanceGroupVersionKind, "virtualmachineinstances", vmi.Name, namespace, controllerServiceAccount, object)
	}
	presets, _ := testutils.NewFakeInformerFor(&v1.VirtualMachineInstancePreset{})
	vmiMutator := &mutators.VMIsMutator{
		ClusterConfig:           a.config,
		VMIPresetInformer:       presets,
		KubeVirtServiceAccounts: map[string]struct{}{controllerServiceAccount: {}},
	}
	mutated = vmiMutator.Mutate(vmiReview(vmiRaw))
	if causes := rejected(mutated); len(causes) > 0 {
		return vmiCauses(causes), nil
	}
	if vmiRaw, err = applyPatch(vmiRaw, mutated); err != nil {
		return nil, err
	}
	// virt-api runs the VMI admitter with the network validator as its
	// one extra spec validator.
	vmiAdmitter := &admitters.VMICreateAdmitter{
		ClusterConfig:           a.config,
		KubeVirtServiceAccounts: map[string]struct{}{controllerServiceAccount: {}},
		SpecValidators: []admitters.SpecValidator{
			func(field *k8sfield.Path, spec *v1.VirtualMachineInstanceSpec, config *virtconfig.ClusterConfig) []metav1.StatusCause {
				return netadmitter.Validate(field, spec, config)
			},
		},
	}
	return vmiCauses(rejected(vmiAdmitter.Admit(ctx, vmiReview(vmiRaw)))), nil
}

// createReview is the admission review of the creation of object, of kind
// gvk (resource, in KubeVirt's API group), by user.
func createReview(gvk schema.GroupVersionKind, resource, name, namespace, user string, object []byte) *admissionv1.AdmissionReview {
	return &admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{
		UID:       types.UID("kvvalidate-" + resource),
		Kind:      metav1.GroupVersionKind(gvk),
		Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
		Name:      name,
		Namespace: namespace,
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: user},
		Object:    runtime.RawExtension{Raw: object},
	}}
}

// controllerServiceAccount is the user virt-controller creates VMIs as.
const controllerServiceAccount = "system:serviceaccount:kubevirt:kubevirt-controller"

// newVMI returns the VMI that virt-controller creates to run vm, made as
// its VM controller makes it (pkg/virt-controller/watch/vm startVMI), with
// the instancetype and preference applied, or the causes for which it
// would fail to.
func (a *admission) newVMI(vm *v1.VirtualMachine) (*v1.VirtualMachineInstance, []metav1.StatusCause) {
	vmi := vmwatch.SetupVMIFromVM(vm)
	var (
		instancetypeSpec *instancetypev1beta1.VirtualMachineInstancetypeSpec
		preferenceSpec   *instancetypev1beta1.VirtualMachinePreferenceSpec
		err              error
	)
	if a.client != nil {
		// The VM webhook lets a VM whose instancetype or preference is
		// missing through; virt-controller then cannot start it.
		if instancetypeSpec, err = instancetypefind.NewSpecFinder(nil, nil, nil, a.client).Find(vm); err != nil {
			return nil, []metav1.StatusCause{{
				Type:    metav1.CauseTypeFieldValueNotFound,
				Field:   "spec.instancetype",
				Message: "virt-controller cannot start the VM: " + err.Error(),
			}}
		}
		if preferenceSpec, err = preferencefind.NewSpecFinder(nil, nil, nil, a.client).FindPreference(vm); err != nil {
			return nil, []metav1.StatusCause{{
				Type:    metav1.CauseTypeFieldValueNotFound,
				Field:   "spec.preference",
				Message: "virt-controller cannot start the VM: " + err.Error(),
			}}
		}
	}
	if vm.Spec.Preference != nil {
		preferenceapply.ApplyAutoAttachPreferences(preferenceSpec, &vmi.Spec)
	}
	vmwatch.AutoAttachInputDevice(vmi)
	if err := netvmispec.SetDefaultNetworkInterface(a.config, &vmi.Spec); err != nil {
		return nil, vmiCauses([]metav1.StatusCause{{Message: err.Error()}})
	}
	if instancetypeSpec != nil || preferenceSpec != nil {
		conflicts := instancetypeapply.NewVMIApplier().ApplyToVMI(k8sfield.NewPath("spec"), instancetypeSpec, preferenceSpec, &vmi.Spec, &vmi.ObjectMeta)
		if len(conflicts) > 0 {
			return nil, vmiCauses([]metav1.StatusCause{{
				Type:    metav1.CauseTypeFieldValueInvalid,
				Field:   conflicts.String(),
				Message: "VMI conflicts with instancetype spec",
			}})
		}
	}
	if causes := netadmitter.NewValidator(k8sfield.NewPath("spec"), &vmi.Spec, a.config).ValidateCreation(); len(causes) > 0 {
		return nil, vmiCauses(causes)
	}
	return vmi, nil
}

// vmiCauses marks causes as the VMI's, whose fields are relative to it.
func vmiCauses(causes []metav1.StatusCause) []metav1.StatusCause {
	for i := range causes {
		causes[i].Field = strings.TrimSpace("VMI " + causes[i].Field)
	}
	return causes
}

// applyPatch applies the JSON patch of a mutating webhook's response.
func applyPatch(raw []byte, resp *admissionv1.AdmissionResponse) ([]byte, error) {
	if len(resp.Patch) == 0 {
		return raw, nil
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		return nil, fmt.Errorf("decoding the mutating webhook's patch: %w", err)
	}
	if raw, err = patch.Apply(raw); err != nil {
		return nil, fmt.Errorf("applying the mutating webhook's patch: %w", err)
	}
	return raw, nil
}

// rejected returns the causes of a response that does not allow the VM;
// one made of its message when it gives none, so that no rejection goes
// unnoticed.
func rejected(resp *admissionv1.AdmissionResponse) []metav1.StatusCause {
	if resp.Allowed {
		return nil
	}
	if resp.Result != nil && resp.Result.Details != nil && len(resp.Result.Details.Causes) > 0 {
		return resp.Result.Details.Causes
	}
	msg := "no reason given"
	if resp.Result != nil && resp.Result.Message != "" {
		msg = resp.Result.Message
	}
	return []metav1.StatusCause{{Message: msg}}
}

func kindOr(kind, def string) string {
	if kind == "" {
		return def
	}
	return kind
}
