#!/bin/sh
# fetch-kernel.sh OUTDIR: unpacks Debian's current amd64 kernel into OUTDIR for the
# minimal reference system. Leaves OUTDIR/vmlinuz, OUTDIR/version (the kernel release)
# and OUTDIR/lib/modules/<release>/ (the whole tree, modules.dep included).
# Idempotent: does nothing when OUTDIR/vmlinuz already exists.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1

if [ -e "$out/vmlinuz" ]; then
	exit 0
fi

# linux-image-amd64 is a meta package; the real image package is its dependency.
pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'
}
name=$(pkg)
if [ -z "$name" ]; then
	apt-get update >&2
	name=$(pkg)
fi
if [ -z "$name" ]; then
	echo "fetch-kernel.sh: apt-cache finds no linux-image package behind linux-image-amd64" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# apt downloads as its sandbox user when that user can write the directory.
if id _apt >/dev/null 2>&1; then
	chown _apt "$tmp"
fi

(cd "$tmp" && apt-get download "$name" >&2)
deb=$(ls "$tmp"/*.deb)
dpkg-deb -x "$deb" "$tmp/root"

release=$(ls "$tmp/root/lib/modules" | head -n 1)
if [ -z "$release" ] || [ ! -f "$tmp/root/boot/vmlinuz-$release" ]; then
	echo "fetch-kernel.sh: $deb holds no /boot/vmlinuz-<release> with /lib/modules/<release>" >&2
	exit 1
fi
# The package ships no modules.dep (the postinst runs depmod); make it here.
if [ ! -f "$tmp/root/lib/modules/$release/modules.dep" ]; then
	depmod -b "$tmp/root" "$release"
fi

# Assemble beside OUTDIR and rename at the end, so an interrupted run never leaves
# an OUTDIR/vmlinuz that makes the next run skip a half-filled directory.
mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/.kernel.XXXXXX")
mkdir -p "$stage/lib/modules"
mv "$tmp/root/lib/modules/$release" "$stage/lib/modules/$release"
printf '%s\n' "$release" >"$stage/version"
cp "$tmp/root/boot/vmlinuz-$release" "$stage/vmlinuz.part"
mv "$stage/vmlinuz.part" "$stage/vmlinuz"
if [ -d "$out" ]; then
	# OUTDIR exists without vmlinuz: fill it in place, vmlinuz last.
	mkdir -p "$out/lib/modules"
	rm -rf "$out/lib/modules/$release"
	mv "$stage/lib/modules/$release" "$out/lib/modules/$release"
	mv "$stage/version" "$out/version"
	mv "$stage/vmlinuz" "$out/vmlinuz"
	rm -rf "$stage"
else
	mv "$stage" "$out"
fi
echo "fetch-kernel.sh: $name ($release) in $out" >&2
