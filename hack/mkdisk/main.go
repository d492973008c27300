// Command mkdisk writes a small disk for the demo and the benchmarks: a raw
// disk with an MBR, or a qcow2 converted from it by qemu-img.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
)

func main() {
	if len(os.Args) != 4 || (os.Args[1] != "raw" && os.Args[1] != "qcow2") {
		fmt.Fprintln(os.Stderr, "usage: mkdisk raw|qcow2 FILE SIZE-IN-MIB")
		os.Exit(2)
	}
	mib, err := strconv.ParseInt(os.Args[3], 10, 64)
	if err != nil || mib < 1 {
		fmt.Fprintf(os.Stderr, "Error: size %q: expected a whole number of MiB\n", os.Args[3])
		os.Exit(2)
	}
	size := mib << 20
	if os.Args[1] == "raw" {
		err = testdisk.WriteRaw(os.Args[2], size, 1)
	} else {
		err = testdisk.WriteQCOW2(os.Args[2], size, 1, false)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
