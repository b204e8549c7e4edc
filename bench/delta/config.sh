#!/bin/sh
# config.sh ROOT: an operator's change to the configuration of ROOT: a
# host name, an application user (with subordinate ids for rootless
# podman), kernel and journald settings, one timer disabled, a motd.
set -eu
r=$1
echo gw-edge-01 >"$r/etc/hostname"
echo 'app:x:1000:1000:Application:/home/app:/bin/sh' >>"$r/etc/passwd"
echo 'app:x:1000:' >>"$r/etc/group"
echo 'app:!::0:99999:7:::' >>"$r/etc/shadow"
echo 'app:!::' >>"$r/etc/gshadow"
echo 'app:100000:65536' >>"$r/etc/subuid"
echo 'app:100000:65536' >>"$r/etc/subgid"
cat >"$r/etc/sysctl.d/60-edge.conf" <<'X'
net.ipv4.ip_forward = 1
net.core.somaxconn = 4096
vm.swappiness = 10
X
mkdir -p "$r/etc/systemd/journald.conf.d"
cat >"$r/etc/systemd/journald.conf.d/50-size.conf" <<'X'
[Journal]
SystemMaxUse=200M
X
rm -f "$r/etc/systemd/system/timers.target.wants/e2scrub_all.timer"
echo 'Edge gateway, managed by twinroot: changes to / are lost at the next update.' >"$r/etc/motd"
