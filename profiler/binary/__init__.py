"""Reading the files a profiled process maps: ELF headers, sections, notes
and symbol tables, separate debug files, safe opening, and the caches kept
per build-id. Both unwind/ (CFI) and symbolize/ (names) stand on it; it
imports neither."""
