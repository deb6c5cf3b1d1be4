"""The program builder's output, instruction by instruction, and the BTF parser on real BTF."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptune.inspect.bpf import asm, fileiter, syscall
from tcptune.inspect.bpf.btf import ENUM, Btf, BtfError, context_offset, load_btf
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
    # BPF_LD | BPF_IMM | BPF_DW, src_reg BPF_PSEUDO_MAP_FD (1), imm the fd; a zero second slot
    assert asm.load_map_fd(asm.R1, 7) == bytes([0x18, 0x11, 0, 0, 7, 0, 0, 0]) + bytes(8)


OWNERS = fileiter.OwnersProgram(
    attach_btf_id=99,
    meta_offset=0,
    seq_offset=0,
    task_offset=8,
    file_offset=24,
    tgid_offset=1268,
    socket_file=16,
    file_inode=32,
    ino_offset=64,
    ino_size=8,
    sock_from_file=162,
    map_lookup=1,
    seq_write=127,
    map_fd=5,
)


def test_the_owners_program_instruction_by_instruction() -> None:
    code = asm.disassemble(fileiter.build(OWNERS))
    assert code == [
        (0xBF, 6, 1, 0, 0),  # r6 = r1 (ctx)
        (0x79, 7, 6, 0, 0),  # r7 = ctx->meta
        (0x79, 7, 7, 0, 0),  # r7 = meta->seq
        (0x79, 1, 6, 24, 0),  # r1 = ctx->file
        (0x15, 1, 0, 23, 0),  # if r1 == 0 goto out (23 ahead: slot 28)
        (0x85, 0, 0, 0, 162),  # r0 = bpf_sock_from_file(r1)
        (0x15, 0, 0, 21, 0),  # if r0 == 0 goto out
        (0x79, 1, 0, 16, 0),  # r1 = socket->file
        (0x79, 1, 1, 32, 0),  # r1 = file->f_inode
        (0x79, 1, 1, 64, 0),  # r1 = inode->i_ino
        (0x7B, 10, 1, -8, 0),  # key = r1
        (0x18, 1, 1, 0, 5),  # r1 = map (fd 5), ...
        (0x00, 0, 0, 0, 0),  # ... ld_imm64's second slot
        (0xBF, 2, 10, 0, 0),  # r2 = r10
        (0x07, 2, 0, 0, -8),  # r2 += -8 (&key)
        (0x85, 0, 0, 0, 1),  # r0 = bpf_map_lookup_elem(map, &key)
        (0x15, 0, 0, 11, 0),  # if r0 == 0 goto out: not a wanted socket
        (0x61, 1, 0, 0, 0),  # r1 = *(u32 *)r0, the position
        (0x63, 10, 1, -16, 0),  # record.position = r1
        (0x79, 1, 6, 8, 0),  # r1 = ctx->task
        (0x15, 1, 0, 7, 0),  # if r1 == 0 goto out
        (0x61, 1, 1, 1268, 0),  # r1 = task->tgid
        (0x63, 10, 1, -12, 0),  # record.tgid = r1
        (0xBF, 1, 7, 0, 0),  # r1 = seq
        (0xBF, 2, 10, 0, 0),  # r2 = r10
        (0x07, 2, 0, 0, -16),  # r2 += -16 (&record)
        (0xB7, 3, 0, 0, 8),  # r3 = 8
        (0x85, 0, 0, 0, 127),  # bpf_seq_write(seq, &record, 8)
        (0xB7, 0, 0, 0, 0),  # out: r0 = 0
        (0x95, 0, 0, 0, 0),  # exit
    ]


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
    assert btf.enumerator("bpf_cmd", "BPF_MAP_CREATE") == syscall.BPF_MAP_CREATE
    assert btf.enumerator("bpf_cmd", "BPF_MAP_UPDATE_BATCH") == syscall.BPF_MAP_UPDATE_BATCH
    assert btf.enumerator("bpf_map_type", "BPF_MAP_TYPE_HASH") == syscall.BPF_MAP_TYPE_HASH
    assert btf.enumerator("bpf_prog_type", "BPF_PROG_TYPE_TRACING") == syscall.BPF_PROG_TYPE_TRACING
    assert btf.enumerator("bpf_attach_type", "BPF_TRACE_ITER") == syscall.BPF_TRACE_ITER
    assert btf.find(ENUM, "sock_flags") > 0
    # anonymous unions are searched as C does: skc_num sits in one
    assert btf.path("sock_common", "skc_num").size == 2
    with pytest.raises(BtfError, match="no member 'nonesuch' in struct sock_common"):
        btf.path("sock_common", "nonesuch")


def test_an_iterator_argument_s_context_offset_is_its_position_times_eight() -> None:
    # bpf_iter_tcp(meta, sk_common, uid): btf_ctx_access gives each argument 8 bytes.
    params = ["meta", "sk_common", "uid"]
    assert [context_offset(params, "bpf_iter_tcp", name) for name in params] == [0, 8, 16]
    with pytest.raises(BtfError, match="bpf_iter_tcp has no argument 'task'"):
        context_offset(params, "bpf_iter_tcp", "task")
