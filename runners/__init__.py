"""Runners: execute a workload on several devices under a synchronisation mode (knows torch)."""
