"""The tiering worker: tiers with hysteresis, the ring buffer, the live feed and event records."""
