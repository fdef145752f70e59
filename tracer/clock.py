"""The run's one clock: CLOCK_MONOTONIC nanoseconds, shared by every process of a capture on one host.

The C interposer reads the same clock, so C records, Python events and the manifest's
``start_monotonic_ns`` compare directly.
"""

from __future__ import annotations

import time

now_ns = time.monotonic_ns  # an alias, not a wrapper: it is called twice per sample
