"""The Django project the benchmark workers run (see bench/README.md)."""
