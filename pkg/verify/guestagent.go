package verify

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// subresourcesPath is where KubeVirt's virt-api serves the subresources of
// VirtualMachineInstances (guestosinfo, portforward, console…).
const subresourcesPath = "/apis/subresources.kubevirt.io/v1"

// GuestOSInfo asks the guest agent of a VMI, through KubeVirt's guestosinfo
// subresource, what runs in the guest. client may be any REST client of the
// cluster (the path is absolute); the clientset's is the usual one.
// The error wraps the API server's, so apierrors.IsConflict tells "agent not
// connected yet" and apierrors.IsNotFound "no such VMI".
func GuestOSInfo(ctx context.Context, client rest.Interface, namespace, name string) (*kubevirtv1.VirtualMachineInstanceGuestAgentInfo, error) {
	// KubeVirt's own client decodes the body by hand too: the object has
	// no ObjectMeta, which the REST client's decoder requires.
	res := client.Get().
		AbsPath(subresourcesPath).
		Namespace(namespace).
		Resource("virtualmachineinstances").
		Name(name).
		SubResource("guestosinfo").
		Do(ctx)
	raw, err := res.Raw()
	if err != nil {
		// Raw's error ignores the Status the server sent; Error decodes it.
		err = res.Error()
		return nil, fmt.Errorf("getting the guest agent's OS info of VMI %s/%s%s: %w", namespace, name, guestAgentHint(err), err)
	}
	var info kubevirtv1.VirtualMachineInstanceGuestAgentInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("decoding the guest agent's OS info of VMI %s/%s: %w", namespace, name, err)
	}
	return &info, nil
}

// guestAgentHint says what the usual causes of err are.
func guestAgentHint(err error) string {
	switch {
	case apierrors.IsConflict(err):
		return " (the VMI is not running or its guest agent is not connected: is qemu-guest-agent installed and enabled in the image?)"
	case apierrors.IsNotFound(err):
		return " (no such VMI, or the cluster does not serve KubeVirt's subresources.kubevirt.io API)"
	case apierrors.IsServiceUnavailable(err):
		return " (KubeVirt's virt-api is unavailable)"
	}
	return ""
}

// guestOSName returns a readable name of the guest's OS.
func guestOSName(info *kubevirtv1.VirtualMachineInstanceGuestAgentInfo) string {
	os := info.OS
	switch {
	case os.PrettyName != "":
		return os.PrettyName
	case os.Name != "":
		return os.Name + " " + os.Version
	}
	return os.ID
}
