"""/proc/PID/maps: `parse_maps(text)` is pure; `read_maps(pid)` does the I/O."""
from __future__ import annotations

import dataclasses

DELETED = " (deleted)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MapEntry:
    """One line of /proc/PID/maps. Addresses are absolute (process virtual)."""

    start: int
    end: int
    perms: str
    offset: int  # file offset of `start`
    dev: str  # "major:minor" in hex, as the kernel prints it
    inode: int
    path: str  # "" for anonymous memory; "[vdso]", "[heap]", ...; may end in " (deleted)"

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    @property
    def is_file(self) -> bool:
        return self.inode != 0 and self.path.startswith("/")

    @property
    def anonymous_code(self) -> bool:
        """Executable memory no file backs: a JIT's code, say (not the
        kernel-provided [vdso] and [vsyscall] pages)."""
        return not self.is_file and self.path not in ("[vdso]", "[vsyscall]", "[vvar]")

    @property
    def deleted(self) -> bool:
        return self.path.endswith(DELETED)

    @property
    def file_path(self) -> str:
        """The path without the kernel's " (deleted)" marker."""
        return self.path[: -len(DELETED)] if self.deleted else self.path

    @property
    def module(self) -> str:
        """A short name for unresolved frames: the file's base name or [pseudo]."""
        if not self.path:
            return "[anon]"
        if self.path.startswith("/"):
            return self.file_path.rsplit("/", 1)[-1]
        return self.path

    @property
    def file_key(self) -> tuple[str, int]:
        return (self.dev, self.inode)

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end


def parse_maps(text: str) -> tuple[MapEntry, ...]:
    """Parse the text of /proc/PID/maps; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5:
            continue
        try:
            start, end = (int(x, 16) for x in fields[0].split("-", 1))
            offset = int(fields[2], 16)
            inode = int(fields[4])
        except ValueError:
            continue
        path = fields[5].strip() if len(fields) > 5 else ""
        entries.append(MapEntry(start=start, end=end, perms=fields[1], offset=offset,
                                dev=fields[3], inode=inode, path=path))
    return tuple(entries)


def read_maps(pid: int) -> str | None:
    """The text of /proc/PID/maps, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None


def find_entry(entries: tuple[MapEntry, ...], address: int) -> MapEntry | None:
    for entry in entries:
        if entry.contains(address):
            return entry
    return None
