"""The benchmarked Product model and the audit packages' registration of it."""
