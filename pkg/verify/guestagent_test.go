package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
)

// guestAgentServer stands in for KubeVirt's virt-api behind the API server:
// it serves the guestosinfo subresource of one VMI with the handler given.
func guestAgentServer(t *testing.T, handler http.HandlerFunc) rest.Interface {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	cs, err := kubevirt.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return cs.KubevirtV1().RESTClient()
}

func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(err.ErrStatus.Code))
	status := err.ErrStatus
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	json.NewEncoder(w).Encode(status)
}

func TestGuestOSInfo(t *testing.T) {
	const path = "/apis/subresources.kubevirt.io/v1/namespaces/tests/virtualmachineinstances/fedora/guestosinfo"
	vmis := schema.GroupResource{Group: "subresources.kubevirt.io", Resource: "virtualmachineinstances"}
	fedora := kubevirtv1.VirtualMachineInstanceGuestAgentInfo{
		GAVersion: "8.2.2",
		Hostname:  "fedora",
		OS:        kubevirtv1.VirtualMachineInstanceGuestOSInfo{Name: "Fedora Linux", Version: "40 (Cloud Edition)", ID: "fedora", PrettyName: "Fedora Linux 40 (Cloud Edition)"},
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		is      func(error) bool
		wantErr []string
	}{
		{name: "the agent answers", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path || r.Method != http.MethodGet {
				http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(fedora)
		}},
		{name: "no such VMI", handler: func(w http.ResponseWriter, r *http.Request) {
			writeStatus(w, apierrors.NewNotFound(vmis, "fedora"))
		}, is: apierrors.IsNotFound, wantErr: []string{"tests/fedora", "no such VMI", "subresources.kubevirt.io"}},
		{name: "no subresource API", handler: http.NotFound,
			is: apierrors.IsNotFound, wantErr: []string{"tests/fedora", "no such VMI"}},
		{name: "agent not connected", handler: func(w http.ResponseWriter, r *http.Request) {
			writeStatus(w, apierrors.NewConflict(vmis, "fedora", &apierrors.StatusError{ErrStatus: metav1.Status{Message: "VMI does not have guest agent connected"}}))
		}, is: apierrors.IsConflict, wantErr: []string{"qemu-guest-agent", "does not have guest agent connected"}},
		{name: "virt-api unavailable", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		}, is: apierrors.IsServiceUnavailable, wantErr: []string{"virt-api is unavailable"}},
		{name: "not JSON", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("<html>"))
		}, wantErr: []string{"decoding the guest agent's OS info of VMI tests/fedora"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := guestAgentServer(t, tt.handler)
			info, err := GuestOSInfo(t.Context(), client, "tests", "fedora")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("GuestOSInfo: %v", err)
				}
				if info.OS != fedora.OS || info.GAVersion != fedora.GAVersion {
					t.Errorf("GuestOSInfo = %+v, want %+v", *info, fedora)
				}
				if got := guestOSName(info); got != fedora.OS.PrettyName {
					t.Errorf("guestOSName = %q", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("GuestOSInfo = %+v, want an error", info)
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("error %v is not of the expected kind", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestGuestOSInfoUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	cs, err := kubevirt.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err = GuestOSInfo(ctx, cs.KubevirtV1().RESTClient(), "tests", "fedora")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %v, want connection refused", err)
	}
}
