"""What the controller exports: Prometheus metrics on /metrics (see docs/metrics.md)."""
