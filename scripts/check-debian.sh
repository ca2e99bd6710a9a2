#!/usr/bin/env bash
# Run the README's two commands (scripts/demo.sh, scripts/test.sh) on a fresh
# Debian root file system, as a new user on a new machine would:
#
#   sudo scripts/check-debian.sh bookworm|trixie [ROOT_DIR]
#
# 1. debootstrap --variant=minbase SUITE ROOT_DIR (reused when it exists);
# 2. this machine's apt sources (suite names swapped) and apt settings, pip
#    settings (/etc/pip.conf, /etc/xdg/pip, ~/.config/pip) and what they point
#    at (its certificate authorities in /usr/local/share/ca-certificates;
#    /opt/wheels, /opt/pypi* bound read-only) are copied in;
#    a policy-rc.d stops packages from starting services inside the root;
# 3. /proc, /sys and /dev are bound, the repository is cloned (from this
#    checkout's HEAD) to /root/jobrunner inside, and demo.sh, then test.sh run
#    there as root, each logged to ROOT_DIR/root/check-*.log;
# 4. everything is unmounted again, also on failure.
#
# Exit status: 0 when both commands passed. Needs root, debootstrap and the
# network (Debian mirror, package index).
set -euo pipefail
suite=${1:?usage: check-debian.sh bookworm|trixie [ROOT_DIR]}
root=${2:-/var/tmp/jobrunner-check-$suite}
repo=$(cd "$(dirname "$0")/.." && pwd)
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "check-debian: debootstrap $suite into $root"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    { tail -20 "$root.debootstrap.log"; exit 1; }
fi

# apt: this machine's sources with the suite's names, and its settings.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed -E "s/\bbookworm\b/$suite/g" /etc/apt/sources.list.d/debian.sources \
    >"$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
fi
cp /etc/apt/apt.conf.d/99* "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# pip: the same configuration and what it refers to.
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
[ -d /etc/xdg/pip ] && mkdir -p "$root/etc/xdg" && cp -r /etc/xdg/pip "$root/etc/xdg/"
[ -d "$HOME/.config/pip" ] && mkdir -p "$root/root/.config" && cp -r "$HOME/.config/pip" "$root/root/.config/"
# This machine's own certificate authorities (a proxy may sign the package
# index's certificates): into the root's trust store, where Debian's
# ca-certificates keeps them when it rebuilds the bundle; the bundle itself
# until that package is installed.
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
if [ -x "$root/usr/sbin/update-ca-certificates" ]; then
  chroot "$root" update-ca-certificates >/dev/null 2>&1
else
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -R "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
bind() {  # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --rbind "$1" "$2"
  mount --make-rslave "$2"
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  mounts+=("$2")
}
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
bind /sys "$root/sys"
bind /dev "$root/dev"
for dir in /opt/wheels /opt/pypi /opt/pypi-more; do
  [ -d "$dir" ] && bind "$dir" "$root$dir" ro
done

rm -rf "$root/root/jobrunner"
git clone -q "$repo" "$root/root/jobrunner"
echo "check-debian: $suite, $(git -C "$root/root/jobrunner" log --oneline -1)"
status=0
for command in demo test; do
  start=$(date +%s)
  echo "check-debian: scripts/$command.sh (log: $root/root/check-$command.log)"
  if chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_FIND_LINKS="${PIP_FIND_LINKS:-}" PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /bin/bash -c "cd /root/jobrunner && scripts/$command.sh" </dev/null \
    >"$root/root/check-$command.log" 2>&1; then
    echo "check-debian: scripts/$command.sh passed in $(($(date +%s) - start)) s"
  else
    status=1
    echo "check-debian: scripts/$command.sh FAILED after $(($(date +%s) - start)) s; its last lines:"
    tail -25 "$root/root/check-$command.log"
  fi
done
exit $status
