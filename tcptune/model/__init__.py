"""Pure data shared by every layer: records, the sysctl catalogue, values, units, findings.

Nothing here reads or writes the system; every module imports only the
standard library and other model modules.
"""
