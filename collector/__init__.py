"""The collector worker: samples every process (Linux /proc, macOS top) and detects pauses.

backend.py picks the platform sampler once at import; sentinel.py is the pause sentinel;
main.py is the worker loop and the standalone --jsonl mode.
"""
