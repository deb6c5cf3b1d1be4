"""A tiny eBPF instruction builder: one function per instruction shape, named as read.

Encoding: struct bpf_insn in include/uapi/linux/bpf.h (opcode byte, dst and
src register nibbles, a signed 16-bit offset, a signed 32-bit immediate);
the opcode classes and modes are Documentation/bpf/standardization/
instruction-set.rst. Only what the iterator programs use is here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tcptune.model.record import record

_INSN = struct.Struct("<BBhi")

# Instruction classes
LD, LDX, ST, STX, ALU, JMP, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
IMM, MEM = 0x00, 0x60  # load/store modes: a 64-bit immediate, [reg + off]
PSEUDO_MAP_FD = 1  # BPF_PSEUDO_MAP_FD: ld_imm64's immediate is a map's file descriptor
SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}  # BPF_B, BPF_H, BPF_W, BPF_DW
K, X = 0x00, 0x08  # source: the immediate, or the src register
ADD, SUB, OR, AND, MOV, END = 0x00, 0x10, 0x40, 0x50, 0xB0, 0xD0
TO_BE = 0x08  # BPF_END's source bit: convert to big-endian
JA, JEQ, JNE, CALL, EXIT = 0x00, 0x10, 0x50, 0x80, 0x90

# Registers: r0 return value, r1-r5 arguments (clobbered by calls),
# r6-r9 kept across calls, r10 the read-only frame pointer.
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """Return one encoded 8-byte instruction."""
    return _INSN.pack(code, dst | (src << 4), off, imm)


def mov_reg(dst: int, src: int) -> bytes:
    """dst = src (64-bit)."""
    return insn(ALU64 | MOV | X, dst, src)


def mov_imm(dst: int, imm: int) -> bytes:
    """dst = imm (sign-extended to 64 bits)."""
    return insn(ALU64 | MOV | K, dst, imm=imm)


def add_imm(dst: int, imm: int) -> bytes:
    """dst += imm."""
    return insn(ALU64 | ADD | K, dst, imm=imm)


def sub_reg(dst: int, src: int) -> bytes:
    """dst -= src (64-bit; its low 32 bits are the u32 difference)."""
    return insn(ALU64 | SUB | X, dst, src)


def to_big_endian(dst: int, bits: int) -> bytes:
    """dst = htobe<bits>(dst): the low ``bits`` in network order, the rest cleared."""
    return insn(ALU | END | TO_BE, dst, imm=bits)


def and_imm(dst: int, imm: int) -> bytes:
    """dst &= imm."""
    return insn(ALU64 | AND | K, dst, imm=imm)


def or_imm(dst: int, imm: int) -> bytes:
    """dst |= imm."""
    return insn(ALU64 | OR | K, dst, imm=imm)


def load_map_fd(dst: int, fd: int) -> bytes:
    """dst = the map behind ``fd``: one ld_imm64, two 8-byte slots (the second holds imm's top).

    The verifier (resolve_pseudo_ldimm64) replaces the descriptor with the
    map's address and makes dst a CONST_PTR_TO_MAP; the program then holds
    the map, so the descriptor may be closed once the program is loaded.
    """
    return insn(LD | IMM | SIZES[8], dst, PSEUDO_MAP_FD, 0, fd) + insn(0)


def load(size: int, dst: int, src: int, off: int) -> bytes:
    """dst = *(u<size*8> *)(src + off), zero-extended."""
    return insn(LDX | MEM | SIZES[size], dst, src, off)


def store(size: int, dst: int, off: int, src: int) -> bytes:
    """*(u<size*8> *)(dst + off) = src."""
    return insn(STX | MEM | SIZES[size], dst, src, off)


def store_imm(size: int, dst: int, off: int, imm: int) -> bytes:
    """*(u<size*8> *)(dst + off) = imm."""
    return insn(ST | MEM | SIZES[size], dst, off=off, imm=imm)


def jump_if_zero(reg: int, skip: int) -> bytes:
    """if reg == 0: skip the next ``skip`` instructions."""
    return insn(JMP | JEQ | K, reg, off=skip, imm=0)


def jump_if_not_equal(reg: int, imm: int, skip: int) -> bytes:
    """if reg != imm: skip the next ``skip`` instructions."""
    return insn(JMP | JNE | K, reg, off=skip, imm=imm)


def call(helper: int) -> bytes:
    """r0 = helper(r1, ..., r5); r1-r5 are clobbered."""
    return insn(JMP | CALL, imm=helper)


def exit_() -> bytes:
    """Return r0 to the kernel."""
    return insn(JMP | EXIT)


def seq_write(seq: int, slot: int, size: int, helper: int) -> list[bytes]:
    """bpf_seq_write(seq, r10 + slot, size): append the record at stack ``slot`` to the output.

    ``helper`` is BPF_FUNC_seq_write's id; r1-r3 are set here, r0 gets the result.
    """
    return [mov_reg(R1, seq), mov_reg(R2, R10), add_imm(R2, slot), mov_imm(R3, size), call(helper)]


def return_zero() -> list[bytes]:
    """Return 0: an iterator program's "go on to the next object"."""
    return [mov_imm(R0, 0), exit_()]


def program(parts: Sequence[bytes]) -> bytes:
    """Join instructions into the byte string BPF_PROG_LOAD takes."""
    return b"".join(parts)


@record
class Label:
    """A place in an ``assemble`` listing that jumps name; it takes no instruction."""

    name: str


@record
class Jump:
    """A jump to a Label, its offset filled in by ``assemble``: ``goto`` or ``if reg OP imm``."""

    op: int  # JA, JEQ or JNE
    target: str
    reg: int = 0
    imm: int = 0


def goto(target: str) -> Jump:
    """Jump to ``target`` unconditionally."""
    return Jump(JA, target)


def jump_to_if_equal(reg: int, imm: int, target: str) -> Jump:
    """if reg == imm: jump to ``target``."""
    return Jump(JEQ, target, reg, imm)


def jump_to_if_not_equal(reg: int, imm: int, target: str) -> Jump:
    """if reg != imm: jump to ``target``."""
    return Jump(JNE, target, reg, imm)


def assemble(items: Sequence[bytes | Label | Jump]) -> bytes:
    """Return the program with every Jump's offset counted to its Label (forward only)."""
    places: dict[str, int] = {}
    position = 0
    for item in items:
        if isinstance(item, Label):
            if item.name in places:
                raise ValueError(f"label {item.name!r} defined twice")
            places[item.name] = position
        else:
            position += 1
    code: list[bytes] = []
    for item in items:
        if isinstance(item, Label):
            continue
        if isinstance(item, Jump):
            skip = places[item.target] - len(code) - 1
            if skip < 0:
                raise ValueError(f"jump back to {item.target!r}: the verifier refuses loops")
            code.append(insn(JMP | item.op | K, item.reg, off=skip, imm=item.imm))
        else:
            code.append(item)
    return program(code)


def disassemble(code: bytes) -> list[tuple[int, int, int, int, int]]:
    """Return (opcode, dst, src, off, imm) per instruction, for tests and --debug."""
    return [(op, regs & 0xF, regs >> 4, off, imm) for op, regs, off, imm in _INSN.iter_unpack(code)]
