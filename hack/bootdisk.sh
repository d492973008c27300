#!/usr/bin/env bash
# Builds a small, real, bootable qcow2 for the tests of verify --local and
# prints its path on stdout; everything else goes to stderr.
#
#   hack/bootdisk.sh [amd64|arm64]        (amd64 by default)
#
# The disk holds a Debian cloud kernel and a busybox initramfs whose /init
# (hack/bootdisk/init) prints a boot marker, reads the NoCloud seed labelled
# cidata (ISO 9660 or FAT), runs its user-data and powers off: it boots to
# its user-data in a few seconds under QEMU's TCG, where a real distribution
# takes minutes. user-data may be a #! script (run by sh when its
# interpreter is missing) or #cloud-config, of which the bootcmd and runcmd
# items are run with sh (so the cluster path's cloud-config works too; its
# ssh_authorized_keys are ignored: there is no sshd).
#   amd64: MBR + one FAT partition with syslinux (BIOS boot, console ttyS0)
#   arm64: GPT + an EFI system partition with a standalone GRUB as
#          EFI/BOOT/BOOTAA64.EFI (UEFI boot with AAVMF, console ttyAMA0)
#
# The packages come from Debian with `apt-get download`; the build itself
# needs no root. arm64 packages on another host are looked up in a private
# apt state under the cache, so the host's apt configuration is not changed.
# The disk is cached under
#   ${BOOTDISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/bootdisk}/<key>/disk-<arch>.qcow2
# where <key> covers the package versions and this script with its files, so
# a warm machine prints the path at once.
#
# Tools: apt-get, dpkg-deb, cpio, gzip, sfdisk (fdisk), mtools, qemu-img
# (qemu-utils); amd64: syslinux, syslinux-common; arm64: grub-mkimage
# (grub-common).
set -euo pipefail

arch=${1:-amd64}
case "$arch" in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
esac
case "$arch" in
amd64 | arm64) ;;
*)
	echo "bootdisk.sh: unknown architecture \"$arch\": expected amd64 or arm64" >&2
	exit 2
	;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BOOTDISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/bootdisk}
log() { echo "bootdisk.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

need=()
need_tool() { command -v "$1" >/dev/null || need+=("$2"); }
need_tool apt-get apt
need_tool dpkg-deb dpkg
need_tool cpio cpio
need_tool gzip gzip
need_tool sfdisk fdisk
need_tool mformat mtools
need_tool qemu-img qemu-utils
if [ "$arch" = amd64 ]; then
	need_tool syslinux syslinux
	[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
else
	need_tool grub-mkimage grub-common
fi
if [ ${#need[@]} -gt 0 ]; then
	die "missing tools; install them with: apt-get install -y ${need[*]}"
fi

# shellcheck source=hack/lib/debapt.sh
. "$here/lib/debapt.sh"

# versions PACKAGE...: prints "package=version" of each candidate (one
# apt-cache call: each one reads all the lists).
versions() {
	apt-cache "${apt_opts[@]}" show --no-all-versions "$@" 2>/dev/null |
		awk '/^Package: /{p=$2} /^Version: /{print p "=" $2}'
}
kernel_meta=linux-image-cloud-$arch
others=(busybox-static)
[ "$arch" = arm64 ] && others+=(grub-efi-arm64-bin)
kernel=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$kernel_meta" 2>/dev/null |
	awk '/^Depends: linux-image-[0-9]/ && !k {k=$2; sub(/,$/, "", k)} END {print k}')
[ -n "$kernel" ] || die "no package $kernel_meta for $arch: run apt-get update first"
mapfile -t pins < <(versions "$kernel" "${others[@]}")
[ ${#pins[@]} -eq $((1 + ${#others[@]})) ] || die "no candidate of $kernel ${others[*]} for $arch (found: ${pins[*]}): run apt-get update first"
tools=""
[ "$arch" = amd64 ] && tools=$(dpkg-query -W -f '${Package}=${Version}\n' syslinux syslinux-common 2>/dev/null || true)

key=$({
	echo "$arch"
	printf '%s\n' "${pins[@]}"
	echo "$tools"
	cat "${BASH_SOURCE[0]}" "$here"/lib/debapt.sh "$here"/bootdisk/*
} | sha256sum | cut -c1-16)
out=$cache/$key/disk-$arch.qcow2
if [ -s "$out" ]; then
	log "cached: ${pins[*]}"
	echo "$out"
	exit 0
fi

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/bootdisk.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "building $out from ${pins[*]}"
apt-get "${apt_opts[@]}" -q -o APT::Sandbox::User="$(id -un)" download "${pins[@]}" >&2
for deb in ./*.deb; do
	case "$deb" in
	*linux-image*) dpkg-deb -x "$deb" kernel ;;
	*busybox*) dpkg-deb -x "$deb" busybox ;;
	*grub*) dpkg-deb -x "$deb" grub ;;
	esac
done
kver=$(basename kernel/lib/modules/*)
vmlinuz=kernel/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || die "no kernel in $kernel"

# The initramfs: busybox, /init and the modules that reach the seed
# (virtio, SATA CD-ROM, ISO 9660 and FAT) with everything they depend on.
root=$work/initramfs
mkdir -p "$root/bin" "$root/lib/modules/$kver"
cp busybox/bin/busybox "$root/bin/busybox"
cp "$here/bootdisk/init" "$root/init"
chmod 0755 "$root/init" "$root/bin/busybox"
moddir=kernel/lib/modules/$kver
declare -A copied=()
included=()
# add_module NAME: copies the module and, first, the modules it depends on;
# names that are built in (or absent from this kernel) are skipped.
add_module() {
	local name=${1//-/_} file dep rel dst
	[ -z "${copied[$name]:-}" ] || return 0
	copied[$name]=1
	file=$(find "$moddir/kernel" -regextype posix-extended -regex ".*/${name//_/[-_]}\.ko(\.xz|\.zst|\.gz)?" -print -quit)
	[ -n "$file" ] || return 0
	included+=("$name")
	rel=${file#"$moddir/"}
	dst=$root/lib/modules/$kver/$rel
	dst=${dst%.xz}
	dst=${dst%.zst}
	dst=${dst%.gz}
	mkdir -p "$(dirname "$dst")"
	case "$file" in
	*.xz) xz -dc "$file" >"$dst" ;;
	*.zst) zstd -qdc "$file" >"$dst" ;;
	*.gz) gzip -dc "$file" >"$dst" ;;
	*) cp "$file" "$dst" ;;
	esac
	for dep in $(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_module "$dep"
	done
}
for m in virtio_pci virtio_mmio virtio_blk virtio_scsi ahci sr_mod sd_mod \
	isofs vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1; do
	add_module "$m"
done
cp "$moddir/modules.order" "$moddir/modules.builtin" "$root/lib/modules/$kver/" 2>/dev/null || true
log "initramfs modules: ${included[*]}"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n >initrd.gz

# The disk: a raw file with one FAT partition, converted to a compressed qcow2.
size_mib=40
raw=$work/disk.raw
truncate -s ${size_mib}M "$raw"
fat_off=$((2048 * 512))
fat_sectors=$(((size_mib - 2) * 2048))
if [ "$arch" = amd64 ]; then
	console=ttyS0
	echo 'start=2048, size='$fat_sectors', type=e, bootable' | sfdisk -q "$raw" >&2
else
	console=ttyAMA0
	printf 'label: gpt\nstart=2048, size=%d, type=U, name="EFI system"\n' $fat_sectors | sfdisk -q "$raw" >&2
fi
img="$raw@@$fat_off"
mformat -i "$img" -T $fat_sectors -h 64 -s 32 -H 2048 -N 0c1d15c0 -v BOOTDISK ::
# panic=-1 reboots at once on a kernel panic, and QEMU runs with -no-reboot:
# a broken boot ends in seconds instead of at the verifier's timeout.
cmdline="console=$console panic=-1 quiet"
mcopy -i "$img" "$vmlinuz" ::/vmlinuz
mcopy -i "$img" initrd.gz ::/initrd.gz
if [ "$arch" = amd64 ]; then
	cat >syslinux.cfg <<EOF
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND $cmdline
EOF
	mcopy -i "$img" syslinux.cfg ::/syslinux.cfg
	syslinux --offset $fat_off --install "$raw"
	dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
else
	cat >grub.cfg <<EOF
search --no-floppy --label BOOTDISK --set root
linux /vmlinuz $cmdline
initrd /initrd.gz
boot
EOF
	grub-mkimage -O arm64-efi -d grub/usr/lib/grub/arm64-efi -c grub.cfg -p /EFI/BOOT -o BOOTAA64.EFI \
		part_gpt fat search search_label linux gzio boot echo
	mmd -i "$img" ::/EFI ::/EFI/BOOT
	mcopy -i "$img" BOOTAA64.EFI ::/EFI/BOOT/BOOTAA64.EFI
fi
mkdir -p "$cache/$key"
qemu-img convert -c -O qcow2 "$raw" "$out.tmp"
mv "$out.tmp" "$out"
log "built $out ($(du -k "$out" | cut -f1) KiB) in $(($(date +%s) - start)) s"
echo "$out"
