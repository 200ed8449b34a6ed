"""Orchestration: command-line entry points, sweeps, the final attack stage and reports."""
