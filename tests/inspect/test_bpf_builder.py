"""The program builder's output, instruction by instruction, and the BTF parser on real BTF."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptune.inspect.bpf import asm, syscall
from tcptune.inspect.bpf.btf import ENUM, Btf, BtfError, load_btf
from tcptune.inspect.bpf.loader import IterProgram, Read, build, layout

SPEC = IterProgram(
    attach_btf_id=99,
    meta_offset=0,
    seq_offset=0,
    object_offset=8,
    seq_write=127,
    convert=137,
    reads=(
        Read("state", False, (), 18, 1),
        Read("inode", False, (288, 16), 64, 8),
        Read("uid", True, (), 16, 4),
    ),
)


def test_layout_puts_the_largest_fields_first_so_every_store_is_aligned() -> None:
    assert layout(SPEC.reads) == ({"inode": 0, "uid": 8, "state": 12}, 16)


def test_the_program_instruction_by_instruction() -> None:
    code = asm.disassemble(build(SPEC))
    assert code == [
        (0xBF, 6, 1, 0, 0),  # r6 = r1 (ctx)
        (0x79, 7, 6, 0, 0),  # r7 = ctx->meta
        (0x79, 7, 7, 0, 0),  # r7 = meta->seq
        (0x79, 8, 6, 8, 0),  # r8 = ctx->sk_common
        (0x15, 8, 0, 17, 0),  # if r8 == 0 goto out (17 ahead)
        (0xBF, 1, 8, 0, 0),  # r1 = r8
        (0x85, 0, 0, 0, 137),  # call bpf_skc_to_tcp_sock
        (0x15, 0, 0, 14, 0),  # if r0 == 0 goto out
        (0xBF, 8, 0, 0, 0),  # r8 = r0
        (0x71, 2, 8, 18, 0),  # r2 = *(u8 *)(r8 + 18)
        (0x73, 10, 2, -4, 0),  # *(u8 *)(r10 - 16 + 12) = r2
        (0x79, 1, 8, 288, 0),  # r1 = sk->sk_socket
        (0x79, 1, 1, 16, 0),  # r1 = socket->file
        (0x79, 2, 1, 64, 0),  # r2 = *(u64 *)(r1 + 64)
        (0x7B, 10, 2, -16, 0),  # record.inode = r2
        (0x61, 2, 6, 16, 0),  # r2 = ctx->uid
        (0x63, 10, 2, -8, 0),  # record.uid = r2
        (0xBF, 1, 7, 0, 0),  # r1 = seq
        (0xBF, 2, 10, 0, 0),  # r2 = r10
        (0x07, 2, 0, 0, -16),  # r2 += -16
        (0xB7, 3, 0, 0, 16),  # r3 = 16
        (0x85, 0, 0, 0, 127),  # call bpf_seq_write
        (0xB7, 0, 0, 0, 0),  # out: r0 = 0
        (0x95, 0, 0, 0, 0),  # exit
    ]


def test_instruction_encoding_is_struct_bpf_insn() -> None:
    assert asm.load(8, asm.R1, asm.R8, 288) == bytes([0x79, 0x81, 0x20, 0x01, 0, 0, 0, 0])
    assert asm.mov_imm(asm.R0, -1) == bytes([0xB7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])


def test_a_record_too_large_for_the_stack_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds the BPF stack"):
        layout([Read("big", False, (), 0, 8, pieces=65)])


def test_garbage_is_not_btf() -> None:
    with pytest.raises(BtfError, match="bad magic"):
        Btf(b"\0" * 64)
    with pytest.raises(BtfError, match="too short"):
        Btf(b"\x9f\xeb")


VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.mark.skipif(not VMLINUX.exists(), reason="this kernel exports no BTF")
def test_uapi_constants_match_the_running_kernels_btf() -> None:
    btf = load_btf()
    assert btf.enumerator("bpf_cmd", "BPF_PROG_LOAD") == syscall.BPF_PROG_LOAD
    assert btf.enumerator("bpf_cmd", "BPF_LINK_CREATE") == syscall.BPF_LINK_CREATE
    assert btf.enumerator("bpf_cmd", "BPF_ITER_CREATE") == syscall.BPF_ITER_CREATE
    assert btf.enumerator("bpf_prog_type", "BPF_PROG_TYPE_TRACING") == syscall.BPF_PROG_TYPE_TRACING
    assert btf.enumerator("bpf_attach_type", "BPF_TRACE_ITER") == syscall.BPF_TRACE_ITER
    assert btf.find(ENUM, "sock_flags") > 0
    # anonymous unions are searched as C does: skc_num sits in one
    assert btf.path("sock_common", "skc_num").size == 2
    with pytest.raises(BtfError, match="no member 'nonesuch' in struct sock_common"):
        btf.path("sock_common", "nonesuch")
