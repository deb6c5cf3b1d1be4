"""Workload profiles (TOML), found, validated and resolved before anything uses them.

A profile names sysctl targets, each with the rationale (why) and the risk
shown to users. Split as tuned does: ``locate`` finds the files (ProfileLocator),
``validate`` checks one file's TOML, ``resolve`` merges the ``extends`` chain,
and ``model`` holds the frozen records (Profile, Target, ProfileSource,
BrokenProfile). Import from those modules; this package re-exports nothing.
"""
