module github.com/containerdisk/kubectl-containerdisk/bench

go 1.26.0

// The benchmark lives in its own module so that its reference dependencies
// (go-containerregistry) never enter the main module's go.mod; the path under
// the main module lets it import the main module's internal/ packages.
replace github.com/containerdisk/kubectl-containerdisk => ../

require (
	github.com/containerdisk/kubectl-containerdisk v0.0.0-00010101000000-000000000000
	github.com/google/go-containerregistry v0.22.1
	github.com/klauspost/pgzip v1.2.6
	github.com/opencontainers/go-digest v1.0.0
	github.com/opencontainers/image-spec v1.1.1
	oras.land/oras-go/v2 v2.7.0
)

require (
	github.com/docker/cli v29.7.2+incompatible // indirect
	github.com/docker/docker-credential-helpers v0.9.5 // indirect
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gotest.tools/v3 v3.5.2 // indirect
)
