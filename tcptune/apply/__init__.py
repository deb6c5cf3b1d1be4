"""The write gate: plan, verify, and the only code that changes the system.

plan.py and verify.py only read. writer.py writes sysctls (through the
injected SysctlWriter) for applier.py and rollback.py, sysctld.py the boot-time
drop-in, statestore.py the undo stack (records.py), history (history.py) and
lock, atomicfile.py every file tcptune replaces.
"""

from pathlib import Path

# The state directory (undo stack, history, lock); the --state-dir default.
DEFAULT_STATE_DIR = Path("/var/lib/tcptune")
