"""The read-only commands' cores: one audit (inspect, profile, advise) and the watch loop."""
