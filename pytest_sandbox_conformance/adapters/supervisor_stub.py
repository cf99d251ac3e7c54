"""A stand-in for the in-sandbox supervisor that OpenShell's drivers start in every container.

OpenShell's Docker driver bind-mounts its supervisor (``openshell-sandbox``) into each sandbox
container and makes it the entrypoint; it refuses a ``supervisor_bin`` that is not an ELF
executable (a shell script is refused). The real supervisor needs the gateway. For conformance
runs the container only has to run, and stop promptly when asked, so the suite ships a stub:
:func:`supervisor_stub` builds a tiny static ELF executable (Linux, x86-64) that replaces itself
with ``/bin/sh -c SCRIPT`` (environment kept; its own arguments, such as ``--workdir /sandbox``,
ignored), where the script waits until it is sent SIGTERM or SIGINT and then exits 0.

``sandbox-conformance supervisor-stub PATH`` writes it (mode 0755). The image the sandbox runs
must have ``/bin/sh`` (the suite's ``sbx-busybox:local`` has). Standard library only; the bytes
are laid out here, field by field, so nothing needs a compiler.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = ["STUB_SCRIPT", "supervisor_stub", "write_supervisor_stub"]

#: What the stub's shell runs: set its traps, announce itself, then wait for SIGTERM/SIGINT
#: and exit 0 (the traps first: a signal sent once it has announced itself is caught).
STUB_SCRIPT = ("trap 'exit 0' TERM INT; echo 'sandbox-conformance supervisor stub: running'; "
               "while :; do sleep 3600 & wait $!; done")

_BASE = 0x400000          # where the one loadable segment is mapped
_EHDR, _PHDR = 64, 56     # ELF64 header and program header sizes


def _machine_code(path_at: int, argv_at: int) -> bytes:
    """x86-64: execve(path, argv, envp taken from the initial stack); exit(127) if it fails."""
    return b"".join([
        b"\x48\x8b\x04\x24",                        # mov rax, [rsp]            ; argc
        b"\x48\x8d\x54\xc4\x10",                    # lea rdx, [rsp+rax*8+16]   ; envp
        b"\x48\xbf" + struct.pack("<Q", path_at),   # mov rdi, path
        b"\x48\xbe" + struct.pack("<Q", argv_at),   # mov rsi, argv
        b"\xb8\x3b\x00\x00\x00",                    # mov eax, 59               ; execve
        b"\x0f\x05",                                # syscall
        b"\xbf\x7f\x00\x00\x00",                    # mov edi, 127
        b"\xb8\x3c\x00\x00\x00",                    # mov eax, 60               ; exit
        b"\x0f\x05",                                # syscall
    ])


def supervisor_stub(script: str = STUB_SCRIPT, shell: str = "/bin/sh") -> bytes:
    """The stub's bytes: a static ELF64 x86-64 executable running ``shell -c script``."""
    code_len = len(_machine_code(0, 0))
    start = _EHDR + _PHDR
    strings = [shell.encode() + b"\0", b"sh\0", b"-c\0", script.encode() + b"\0"]
    data_at = start + code_len
    offsets = []
    at = data_at
    for s in strings:
        offsets.append(at)
        at += len(s)
    argv_at = (at + 7) // 8 * 8
    argv = b"".join(struct.pack("<Q", _BASE + off) for off in offsets[1:]) + b"\0" * 8
    code = _machine_code(_BASE + offsets[0], _BASE + argv_at)
    body = code + b"".join(strings)
    body += b"\0" * (argv_at - start - len(body)) + argv
    size = start + len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8  # 64-bit, little-endian, SYSV
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, _BASE + start, _EHDR, 0, 0,
                               _EHDR, _PHDR, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # LOAD, R+X
    return ehdr + phdr + body


def write_supervisor_stub(path: str | os.PathLike[str]) -> Path:
    """Write the stub to ``path`` (mode 0755) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(supervisor_stub())
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    return out
