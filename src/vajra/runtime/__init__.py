"""Process runtime: CPU placement, pinning, wait strategies and environment checks."""
