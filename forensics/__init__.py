"""Forensics worker: a bundle for every pause that names the culprits and the cause.

Modules, one job each:
  main.py            the worker process: sockets, poll loop, heartbeat, shutdown
  engine.py          what the loop does with each message (ring, sessions, coalescing, alerts)
  ring.py            ring buffer of the live feed (the seconds before a pause)
  session.py         one capture session: bundle dir, concurrent captures, ForensicsDone
  bundle.py          bundle naming and JSON files (written atomically)
  culprits.py        ranking of the processes by what they consumed in the stall
  stall_window.py    which samples cover the stall, each figure over it and the interval it covers
  cause.py           classification of the pause (cpu / memory / io / suspend-adjacent / unknown)
  runner.py          one capture command: own process group, timeout, output cap
  proc_files.py      /proc pressure, meminfo, vmstat, loadavg, stat: read, parse, delta
  linux_captures.py  stuck threads, /proc state across the pause, kernel log
  macos_captures.py  spindump, tailspin, log show (as the seed)
  suspend_watch.py   notices resumes from the clocks (Linux BOOTTIME vs MONOTONIC)
  notify.py          desktop notifications: rules, rate limit, notify-send / osascript
  caffeinate.py      keeps App Nap off the pipeline on macOS

A bundle: <data>/events/<YYYYmmdd-HHMMSS.mmm>-pause[-N]/ with metadata.json (timing, host,
versions, cause + evidence, captures, coalesced pauses), ring_buffer.json, culprits.json,
processes.json and the captures' files. A pause arriving while a capture runs is coalesced into
the running bundle (metadata.json "coalesced", processes-N.json), never a second heavy capture.
"""
