#!/usr/bin/env bash
# Installs the Debian packages the test bed needs, only those that are missing.
# Idempotent: a second run does nothing (no apt-get update when all are present).
set -euo pipefail

PACKAGES=(
  openssh-server openssh-client rsync iproute2
  slurmctld slurmd slurm-client munge
  procps psmisc
  libpam-google-authenticator oathtool
  shellcheck
  chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all ${#PACKAGES[@]} packages already installed"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# sshd refuses to start without its privilege separation directory.
mkdir -p /run/sshd

# Debian's packages may start daemons on install on some systems; the test bed runs its own.
for svc in ssh munge slurmctld slurmd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    echo "install-system-deps: note: system service $svc is running (the test bed does not need it)"
  fi
done
