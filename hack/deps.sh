#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests use, when missing:
#   qemu-utils           qemu-img makes and checks test disks
#   skopeo               reads what the tool writes
#   kubernetes-client    kubectl dispatches to the plugin binaries
#   xz-utils             compresses a test upstream's disks
#   qemu-system-x86, qemu-system-arm, qemu-efi-aarch64
#                        boot disks for verify --local (amd64, arm64 UEFI)
#   syslinux, syslinux-common, mtools, fdisk, cpio, grub-common
#                        build the small bootable test disk (hack/bootdisk.sh)
#   etcd-server          backs the test kube-apiserver (hack/kube-apiserver.sh)
#   docker-registry      a registry built apart from this project, for mirror tests
#   containerd           imports the archives mirror writes (ctr images import)
#   python3              serves the release archives on loopback (hack/krew.sh)
#   zip, unzip           the windows release archive (hack/release.sh) and its check
#   e2fsprogs            builds the customize tests' guest disk (hack/guestdisk.sh)
#   guestfs-tools, libguestfs-tools, linux-image-cloud-amd64
#                        virt-customize, virt-sysprep, virt-sparsify, guestfish
#                        and the kernel of their appliance (pkg/customize)
set -euo pipefail
missing=()
need() { # need PACKAGE FILE-OR-COMMAND
	if [[ $2 == /* ]]; then [ -e "$2" ] && return; else command -v "$2" >/dev/null && return; fi
	missing+=("$1")
}
need qemu-utils qemu-img
need skopeo skopeo
need kubernetes-client kubectl
need xz-utils xz
need qemu-system-x86 qemu-system-x86_64
need qemu-system-arm qemu-system-aarch64
need qemu-efi-aarch64 /usr/share/AAVMF/AAVMF_CODE.fd
need syslinux /usr/lib/SYSLINUX/mbr.bin
need syslinux-common /usr/lib/syslinux/modules/bios/ldlinux.c32
need mtools mcopy
need fdisk sfdisk
need cpio cpio
need grub-common grub-mkimage
need etcd-server etcd
need docker-registry docker-registry
need containerd ctr
need python3 python3
need zip zip
need unzip unzip
need e2fsprogs mkfs.ext4
need guestfs-tools virt-customize
need libguestfs-tools guestfish
# The appliance boots the host's kernel; a new machine may have none in /boot.
compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=("linux-image-cloud-$(dpkg --print-architecture)")
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "Missing: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
echo "Installing ${missing[*]}" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
