"""Every output format lives in this package: each function returns a string, the CLI prints it.

One module per family of output: ``audit`` (text and JSON), ``reference``
(profiles, explain), ``changes`` (plan, apply, rollback, verify, history),
``metrics`` (Prometheus, the Nagios check line), ``watch`` (log lines, JSON
lines, screens) and ``terminal`` (the full-screen terminal watch draws on).
Callers import the module they need, so a command loads only what it prints.
"""

AUDIT_FORMATS = ("text", "json", "prometheus", "check", "html")  # `tcptune audit --format`
