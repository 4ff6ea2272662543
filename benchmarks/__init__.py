"""Benchmark scripts: run each as a program (see its "To run:" docstring)."""
