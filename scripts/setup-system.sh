#!/usr/bin/env bash
# Installs the Debian packages the profiler and its tests need. Idempotent:
# when everything is present it touches neither apt's lists nor the network.
set -euo pipefail

arch=$(dpkg --print-architecture)
running_headers="linux-headers-$(uname -r)"

packages=(
  python3 python3-venv python3-pip      # the venv is built from /usr/bin/python3
  python3-bpfcc bpfcc-tools bpftool     # BPF: BCC's Python bindings, its tools (benchmarks), leak checks
  gcc g++ make binutils xz-utils        # test workloads, addr2line/nm/objcopy
  chromium                              # browser tests of the interactive SVG
  linux-perf                            # the oracle of the unwinding tests (perf record --call-graph dwarf)
  rustc                                 # a Rust workload for the unwinding tests
  libc6-dbg                             # libc's debug info: its CFI and symbols in tests
  golang-go                             # go tool pprof: the oracle of pprof output; Go's own CPU profiles as input
  llvm                                  # llvm-symbolizer: source lines and inline frames from DWARF
)
# speedscope's own app (npm), opened in the browser tests. A Node.js that
# brings its own npm (NodeSource's) conflicts with Debian's npm package.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

# Kernel headers for BCC: the running kernel's own package when the
# distribution has one, else its default headers (the profiler points BCC at
# them when /lib/modules/$(uname -r)/build is missing). Default headers
# already installed do not count while the archive (as apt last saw it) has
# the running kernel's own.
have_headers=no
if [ -e "/lib/modules/$(uname -r)/build/include" ] || installed "$running_headers"; then
  have_headers=yes
elif installed "linux-headers-$arch" && ! apt-cache show "$running_headers" >/dev/null 2>&1; then
  have_headers=yes
fi

if [ ${#missing[@]} -eq 0 ] && [ $have_headers = yes ]; then
  echo "setup: system packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: needs root to install: ${missing[*]} (run 'sudo make setup')" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ $have_headers = no ]; then
  if apt-cache show "$running_headers" >/dev/null 2>&1; then
    missing+=("$running_headers")
  else
    echo "setup: no $running_headers in the archive; installing linux-headers-$arch instead"
    missing+=("linux-headers-$arch")
  fi
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
