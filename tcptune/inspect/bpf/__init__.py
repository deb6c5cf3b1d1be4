"""Read kernel objects with BPF iterators through bpf(2): BTF, instructions, loader."""
