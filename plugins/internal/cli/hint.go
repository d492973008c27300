package cli

import (
	"crypto/x509"
	"errors"
	"net/http"
	"strings"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Hint says what to try next for the registry errors people meet most:
// missing credentials, an unknown certificate authority, HTTP against
// HTTPS. It returns "" when it has nothing to add.
func Hint(err error) string {
	var (
		resp    *errcode.ErrorResponse
		unknown x509.UnknownAuthorityError
	)
	switch {
	case errors.Is(err, auth.ErrBasicCredentialNotFound),
		errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return "log in with 'docker login HOST', or name a Docker config file with credentials for it with --registry-config"
	case errors.As(err, &unknown), strings.Contains(err.Error(), "x509: certificate signed by unknown authority"):
		return "trust the registry's certificate authority with --ca-file FILE, or skip verification with --insecure"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the registry speaks plain HTTP: add --plain-http"
	case errors.As(err, &resp) && resp.StatusCode == http.StatusBadRequest && resp.URL != nil && resp.URL.Scheme == "http":
		return "the registry may speak HTTPS: loopback registries are reached over plain HTTP unless you add --plain-http=false"
	}
	return ""
}

// Explain is the error's message followed by its hint, if any.
func Explain(err error) string {
	if h := Hint(err); h != "" {
		return err.Error() + "\n  hint: " + h
	}
	return err.Error()
}
