"""A training loop that saves a checkpoint (0.5 s) when it is asked to stop, as real jobs do.

    python checkpoint_on_signal.py LOG READY

Each SIGINT / SIGTERM / SIGHUP / SIGUSR1 it receives is appended to LOG and raises
KeyboardInterrupt, as Python's own SIGINT handler does: the first breaks the loop into the
checkpoint; a second one during the checkpoint interrupts it (the checkpoint is then not written
and the program dies of KeyboardInterrupt). READY is created once the handlers are in place. After a
checkpoint it prints ``checkpoint saved`` and exits 3.
"""

import signal
import sys
import time
from pathlib import Path

log, ready = Path(sys.argv[1]), Path(sys.argv[2])


def note(signum, frame):
    with log.open("a") as f:
        f.write(signal.Signals(signum).name + "\n")
    raise KeyboardInterrupt


for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(sig, note)
print("training", flush=True)
ready.touch()
try:
    while True:
        time.sleep(0.02)
except KeyboardInterrupt:
    time.sleep(0.5)  # writing the checkpoint
    (log.parent / "checkpoint").write_text("saved")
    print("checkpoint saved", flush=True)
time.sleep(0.3)  # a late duplicate signal would still land here
sys.exit(3)
