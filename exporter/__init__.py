"""The exporter worker: the pipeline's figures for Prometheus at /metrics (issue 20)."""
