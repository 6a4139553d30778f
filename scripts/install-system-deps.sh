#!/usr/bin/env bash
# Installs the Debian packages the test bed needs, only those that are missing: as root with
# apt-get, as a user with passwordless sudo through `sudo -n`, otherwise it stops with one line
# naming the command that installs them. Idempotent: a second run does nothing (no apt-get update
# when all are present). npm test (scripts/test.sh) runs it before any test.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  openssh-server openssh-client rsync iproute2
  slurmctld slurmd slurm-client munge
  procps psmisc
  libpam-google-authenticator oathtool
  shellcheck
  chromium
)
# its own test checks the paths below with a package that does not exist
if [ -n "${PARSL_SIDECAR_SYSTEM_PACKAGES:-}" ]; then
  read -r -a PACKAGES <<<"$PARSL_SIDECAR_SYSTEM_PACKAGES"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  # removed but not purged is "deinstall ok config-files", which `dpkg -s` still calls success
  if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    as_root=(sudo -n)
  elif [ "${#missing[@]}" -gt 0 ]; then
    echo "install-system-deps: the tests need Debian packages that are missing (${missing[*]}); install them with: sudo bash $(pwd)/scripts/install-system-deps.sh" >&2
    exit 1
  fi
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all ${#PACKAGES[@]} packages already installed"
else
  echo "install-system-deps: installing ${missing[*]}${as_root:+ (through sudo)}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# sshd refuses to start without its privilege separation directory.
[ -d /run/sshd ] || "${as_root[@]}" mkdir -p /run/sshd 2>/dev/null || true

# Debian's packages may start daemons on install on some systems; the test bed runs its own.
for svc in ssh munge slurmctld slurmd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    echo "install-system-deps: note: system service $svc is running (the test bed does not need it)"
  fi
done
