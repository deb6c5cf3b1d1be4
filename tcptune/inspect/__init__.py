"""Everything that reads the kernel: procfs, sock_diag, counters, owners, namespaces.

The result is one frozen Snapshot (tcptune.model.snapshot). Nothing here
writes to the system; entering a namespace (netns.py) changes only this
process.
"""
