#!/usr/bin/env bash
# Tests the release: hack/release-test.sh
#
#   1. hack/release.sh builds the archives of the five platforms and the krew
#      manifest.
#   2. It builds linux/amd64 and windows/amd64 again from a copy of the tree
#      at another path, with other file times, another umask and another
#      time zone: the archives must be byte-identical.
#   3. Each archive must hold exactly the eight binaries and LICENSE, with
#      the commit's time, owner 0, fixed modes and (tar.gz) a gzip header
#      with no name and no time; each binary must be built with -trimpath
#      and stripped (-ldflags "-s -w"); the manifest must name each archive's uri and
#      sha256 and the umbrella as bin.
#   4. hack/krew.sh validates the manifest with krew's validator and installs
#      the plugin offline through the real kubectl.
#
# Any difference fails the script.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
version=v0.0.0-releasetest
base_url=https://example.invalid/releases/$version
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fail() {
	echo "release test: $*" >&2
	exit 1
}

start=$SECONDS
"$repo/hack/release.sh" --base-url "$base_url" --out "$work/a" "$version" >/dev/null
echo "release test: five platforms built in $((SECONDS - start)) s" >&2

# The same release from another place, other file times, umask and zone.
mkdir "$work/src"
tar -C "$repo" --exclude=./bin --exclude=./demo --exclude=./dist --exclude=./containerdisks -cf - . | tar -C "$work/src" -xf -
find "$work/src" -exec touch -h -d '2001-02-03 04:05:06' {} +
git -C "$work/src" update-index -q --refresh >/dev/null 2>&1 || true
start=$SECONDS
(
	cd "$work/src"
	umask 077
	TZ=Pacific/Auckland PLATFORMS="linux/amd64 windows/amd64" ./hack/release.sh --base-url "$base_url" --out "$work/b" "$version" >/dev/null 2>&1
) || fail "the second build, in $work/src, failed"
echo "release test: linux/amd64 and windows/amd64 built again in $((SECONDS - start)) s" >&2
for f in "$work/b"/kubectl-containerdisk_*; do
	name=${f##*/}
	cmp -s "$f" "$work/a/$name" || fail "$name differs between two builds of the same commit"
	echo "release test: $name is byte-identical (sha256 $(sha256sum "$f" | head -c 16)…, $(stat -c %s "$work/a/$name") bytes)" >&2
done
[ "$(ls "$work/b" | grep -c -v '\.sha256$\|\.yaml$')" = 2 ] || fail "the second build made $(ls "$work/b") instead of two archives"

# What each archive holds.
epoch=$(cd "$repo" && git log -1 --format=%ct)
python3 - "$work/a" "$version" "$base_url" "$epoch" <<'EOF'
import hashlib, os, re, sys, tarfile, zipfile

dist, version, base_url, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
subs = ["gather", "build", "push", "pipeline", "verify", "mirror", "docs"]
platforms = ["linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"]
manifest = open(os.path.join(dist, "containerdisk.yaml")).read()
errors = []

for platform in platforms:
    goos, arch = platform.split("/")
    exe = ".exe" if goos == "windows" else ""
    want = sorted(["LICENSE", "kubectl-containerdisk" + exe] + ["kubectl-containerdisk-%s%s" % (s, exe) for s in subs])
    name = "kubectl-containerdisk_%s_%s_%s.%s" % (version, goos, arch, "zip" if goos == "windows" else "tar.gz")
    path = os.path.join(dist, name)
    data = open(path, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    if open(path + ".sha256").read() != "%s  %s\n" % (sha, name):
        errors.append("%s.sha256 is not the archive's sha256 %s" % (name, sha))
    block = re.search(r'os: %s\n\s+arch: %s\n(.*?)(?=\n  - selector|\Z)' % (goos, arch), manifest, re.S)
    if not block:
        errors.append("the manifest has no platform %s" % platform)
    else:
        b = block.group(1)
        if 'uri: "%s/%s"' % (base_url, name) not in b:
            errors.append("the manifest's uri for %s is not %s/%s" % (platform, base_url, name))
        if 'sha256: "%s"' % sha not in b:
            errors.append("the manifest's sha256 for %s is not %s" % (platform, sha))
        if 'bin: kubectl-containerdisk%s\n' % exe not in b + "\n":
            errors.append("the manifest's bin for %s is not kubectl-containerdisk%s" % (platform, exe))
        if "LICENSE" not in b:
            errors.append("the manifest does not install LICENSE on %s" % platform)
    if goos == "windows":
        z = zipfile.ZipFile(path)
        infos = z.infolist()
        got = [i.filename for i in infos]
        for i in infos:
            mode = (i.external_attr >> 16) & 0o7777
            wmode = 0o644 if i.filename == "LICENSE" else 0o755
            if mode != wmode:
                errors.append("%s: %s has mode %o, want %o" % (name, i.filename, mode, wmode))
            if i.extra:
                errors.append("%s: %s carries extra fields (times, uid)" % (name, i.filename))
    else:
        if data[:3] != b"\x1f\x8b\x08" or data[3] & 0x08 or data[4:8] != b"\0\0\0\0":
            errors.append("%s: the gzip header carries a name or a time" % name)
        t = tarfile.open(path)
        members = t.getmembers()
        got = [m.name for m in members]
        for m in members:
            wmode = 0o644 if m.name == "LICENSE" else 0o755
            if (m.uid, m.gid, m.uname, m.gname) != (0, 0, "", "") or m.mtime != epoch or m.mode != wmode or not m.isfile():
                errors.append("%s: %s is uid %d gid %d (%r %r) mtime %d mode %o, want 0 0 and the commit's time %d, mode %o" %
                              (name, m.name, m.uid, m.gid, m.uname, m.gname, m.mtime, m.mode, epoch, wmode))
    if got != want:
        errors.append("%s holds %s, want %s in that order" % (name, got, want))
    print("release test: %s: %d bytes, %s" % (name, len(data), ", ".join(got)), file=sys.stderr)

if errors:
    print("\n".join("release test: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
EOF

# Stripped and path-free: the build settings go records in each binary.
mkdir "$work/x"
tar -C "$work/x" -xzf "$work/a/kubectl-containerdisk_${version}_linux_amd64.tar.gz"
for bin in "$work"/x/kubectl-containerdisk*; do
	info=$(go version -m "$bin")
	grep -q $'\tbuild\t-trimpath=true$' <<<"$info" || fail "${bin##*/} was not built with -trimpath"
	! grep -q -F "$repo" "$bin" || fail "${bin##*/} holds the build directory $repo"
	# go leaves -ldflags out of the build settings under -trimpath: -s and
	# -w show as the missing symbol table and DWARF sections.
	sections=$(readelf -S -W "$bin")
	grep -q '\.text' <<<"$sections" || fail "readelf shows no sections of ${bin##*/}"
	if grep -q -E '\.symtab|\.debug_|\.zdebug_' <<<"$sections"; then fail "${bin##*/} has a symbol table or DWARF (built without -ldflags \"-s -w\")"; fi
	echo "release test: ${bin##*/}: $(stat -c %s "$bin") bytes, -trimpath, no symbol table, no DWARF" >&2
done
# The release and the commit are stamped into every binary.
commit=$(git -C "$repo" rev-parse --short=12 HEAD)
"$work/x/kubectl-containerdisk" version >"$work/version.txt"
grep -q "^kubectl containerdisk $version\$" "$work/version.txt" || fail "kubectl-containerdisk version does not say $version: $(cat "$work/version.txt")"
grep -q "^commit: $commit\(-dirty\)\?\$" "$work/version.txt" || fail "kubectl-containerdisk version does not say commit $commit: $(cat "$work/version.txt")"
for sub in gather push pipeline verify mirror docs; do
	"$work/x/kubectl-containerdisk-$sub" --version | grep -q "^kubectl containerdisk $sub $version\$" ||
		fail "kubectl-containerdisk-$sub --version does not say $version"
done

"$repo/hack/krew.sh" "$work/a" >/dev/null
echo "release test: passed" >&2
