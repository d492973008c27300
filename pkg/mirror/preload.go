package mirror

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
)

// clusterListPage is how many objects ClusterImages asks for at a time.
const clusterListPage = 500

// registrySourcePrefix starts the URL of a CDI registry import of an image.
const registrySourcePrefix = "docker://"

// ClusterImages returns the images that the VirtualMachines and
// VirtualMachineInstances in namespace (every namespace when it is "") boot
// from, sorted and each once: what a mirror must hold for them to start
// where the original registry is out of reach. These are the images of
// containerDisk volumes and of kernel boot containers, and, for a
// VirtualMachine, those its DataVolume templates import from a registry
// (a "docker://" URL, without the scheme).
//
// Listing every namespace needs the right to list both kinds
// cluster-wide; the error of a user without it suggests a namespace.
func ClusterImages(ctx context.Context, kv kubevirt.Interface, namespace string) ([]string, error) {
	where := fmt.Sprintf("in namespace %s", namespace)
	if namespace == metav1.NamespaceAll {
		where = "in all namespaces"
	}
	images := make(map[string]bool)
	vms := kv.KubevirtV1().VirtualMachines(namespace)
	opts := metav1.ListOptions{Limit: clusterListPage}
	for {
		list, err := vms.List(ctx, opts)
		if err != nil {
			return nil, listError("VirtualMachines", namespace, where, err)
		}
		for _, vm := range list.Items {
			if vm.Spec.Template != nil {
				addInstanceImages(images, &vm.Spec.Template.Spec)
			}
			for _, dv := range vm.Spec.DataVolumeTemplates {
				if src := dv.Spec.Source; src != nil && src.Registry != nil && src.Registry.URL != nil {
					if image, ok := strings.CutPrefix(*src.Registry.URL, registrySourcePrefix); ok && image != "" {
						images[image] = true
					}
				}
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	vmis := kv.KubevirtV1().VirtualMachineInstances(namespace)
	opts = metav1.ListOptions{Limit: clusterListPage}
	for {
		list, err := vmis.List(ctx, opts)
		if err != nil {
			return nil, listError("VirtualMachineInstances", namespace, where, err)
		}
		for _, vmi := range list.Items {
			addInstanceImages(images, &vmi.Spec)
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	out := make([]string, 0, len(images))
	for image := range images {
		out = append(out, image)
	}
	slices.Sort(out)
	return out, nil
}

// addInstanceImages adds the images a VirtualMachineInstance boots from.
func addInstanceImages(images map[string]bool, spec *kubevirtv1.VirtualMachineInstanceSpec) {
	for _, v := range spec.Volumes {
		if v.ContainerDisk != nil && v.ContainerDisk.Image != "" {
			images[v.ContainerDisk.Image] = true
		}
	}
	if fw := spec.Domain.Firmware; fw != nil && fw.KernelBoot != nil && fw.KernelBoot.Container != nil && fw.KernelBoot.Container.Image != "" {
		images[fw.KernelBoot.Container.Image] = true
	}
}

func listError(kind, namespace, where string, err error) error {
	if namespace == metav1.NamespaceAll && apierrors.IsForbidden(err) {
		return fmt.Errorf("listing %s %s: %w; name a namespace to list only its %s", kind, where, err, kind)
	}
	return fmt.Errorf("listing %s %s: %w", kind, where, err)
}
