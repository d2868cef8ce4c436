#!/usr/bin/env bash
# Builds the .deb with cpack and checks what it installs and that it enables nothing.
set -euo pipefail
build=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$build" && cpack -G DEB -B "$out" >/dev/null)
deb=$(ls "$out"/*.deb)
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/keygate ./usr/lib/systemd/system/keygate.service ./usr/lib/systemd/system/keygate.socket \
            ./etc/keygate/keygate.conf ./usr/share/doc/keygate/README.md; do
  echo "$contents" | grep -q " $path\$" || { echo "missing $path in $deb"; echo "$contents"; exit 1; }
done
dpkg-deb -e "$deb" "$out/control"
grep -q "adduser --system" "$out/control/postinst" || { echo "postinst does not create the user"; exit 1; }
! grep -v "^#" "$out/control/postinst" | grep -Eq "systemctl (enable|start)|deb-systemd-invoke" || { echo "the package enables a unit"; exit 1; }
grep -q "/etc/keygate/keygate.conf" "$out/control/conffiles" || { echo "keygate.conf is not a conffile"; exit 1; }
dpkg-deb -f "$deb" Depends | grep -q "libc6" || { echo "no shared-library dependencies computed"; exit 1; }
# The operator commands talk HTTP(S) through libcurl.
dpkg-deb -f "$deb" Depends | grep -q "libcurl4" || { echo "libcurl4 is not in Depends"; exit 1; }
echo "ok: $(basename "$deb")"
