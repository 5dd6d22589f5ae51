"""Find kernel headers that BCC can compile against, without touching the system.

Order: $BCC_KERNEL_SOURCE if the user set it; /lib/modules/$(uname -r)/build;
the kernel's built-in headers (/sys/kernel/kheaders.tar.xz, which BCC reads
itself); else the newest distribution headers /usr/src/linux-headers-*-ARCH.
Debian splits those into an ARCH directory (generated headers, config) and a
-common sibling (everything else); BCC wants one tree, so we lay out a private
tree of symlinks in a temporary directory, removed after compiling.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import platform
import re
import shutil
import tempfile
from typing import Iterator

from profiler.errors import KernelHeadersError

KCONFIG = "include/linux/kconfig.h"
_DEB_ARCH = {"x86_64": ("amd64", "x86"), "aarch64": ("arm64", "arm64"),
             "ppc64le": ("powerpc64le", "powerpc"), "s390x": ("s390x", "s390"),
             "riscv64": ("riscv64", "riscv")}


@dataclasses.dataclass(frozen=True)
class HeadersPlan:
    """How BCC will find headers: `source` for BCC_KERNEL_SOURCE (None: BCC's
    own default works), or a split tree (`arch_dir`, `common_dir`) to merge."""

    description: str
    source: str | None = None
    arch_dir: pathlib.Path | None = None
    common_dir: pathlib.Path | None = None


def _version_key(path: pathlib.Path) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", path.name)]


def plan_headers(release: str | None = None, src: str = "/usr/src",
                 modules: str = "/lib/modules", environ=os.environ,
                 builtin: str = "/sys/kernel/kheaders.tar.xz") -> HeadersPlan:
    """Decide where the headers come from; KernelHeadersError listing what was
    tried when nothing usable exists."""
    release = release or platform.release()
    tried = []
    env = environ.get("BCC_KERNEL_SOURCE")
    if env:
        if (pathlib.Path(env) / KCONFIG).exists():
            return HeadersPlan(f"BCC_KERNEL_SOURCE={env}", source=env)
        tried.append(f"BCC_KERNEL_SOURCE={env} (no {KCONFIG})")
    build = pathlib.Path(modules) / release / "build"
    if (build / KCONFIG).exists():
        return HeadersPlan(str(build))
    tried.append(f"{build} (missing)")
    if pathlib.Path(builtin).exists():
        return HeadersPlan(f"{builtin} (CONFIG_IKHEADERS)")
    tried.append(f"{builtin} (not built in)")
    deb_arch, _ = _DEB_ARCH.get(platform.machine(), (platform.machine(), ""))
    candidates = sorted(pathlib.Path(src).glob(f"linux-headers-*-{deb_arch}"),
                        key=_version_key, reverse=True)
    for arch_dir in candidates:
        if (arch_dir / KCONFIG).exists():
            return HeadersPlan(str(arch_dir), source=str(arch_dir))
        common = arch_dir.with_name(arch_dir.name[: -len(deb_arch)] + "common")
        if (common / KCONFIG).exists() and (arch_dir / "include/generated").is_dir():
            return HeadersPlan(f"{arch_dir} + {common.name}", arch_dir=arch_dir,
                               common_dir=common)
        tried.append(f"{arch_dir} (incomplete: no {common.name})")
    if not candidates:
        tried.append(f"{src}/linux-headers-*-{deb_arch} (none installed)")
    raise KernelHeadersError(
        f"no kernel headers for BCC (kernel {release}); tried: " + "; ".join(tried),
        f"run 'make setup', or: apt-get install linux-headers-{release} "
        f"(or linux-headers-{deb_arch} when that package does not exist)")


def _merge_tree(plan: HeadersPlan, into: pathlib.Path) -> None:
    """Symlink the entries of both halves into one tree under `into`."""
    _, karch = _DEB_ARCH.get(platform.machine(), ("", platform.machine()))
    for rel in ("include", f"arch/{karch}/include"):
        (into / rel).mkdir(parents=True, exist_ok=True)
        for half in (plan.common_dir, plan.arch_dir):
            base = half / rel
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                link = into / rel / entry.name
                if not link.exists():
                    link.symlink_to(entry)
    for name in ("Makefile", ".config"):
        if (plan.arch_dir / name).exists():
            (into / name).symlink_to(plan.arch_dir / name)


@contextlib.contextmanager
def kernel_source(plan: HeadersPlan) -> Iterator[str | None]:
    """Yield the BCC_KERNEL_SOURCE value to compile with (None: leave unset)."""
    if plan.arch_dir is None:
        yield plan.source
        return
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="profiler-kheaders-"))
    try:
        _merge_tree(plan, tmp)
        yield str(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
