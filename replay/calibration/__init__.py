"""Calibration: measure a storage target (the cells of each kind of target), fit the profile numbers
and write the profile ``replay what-if --profile`` loads (:func:`.calibrate.calibrate`)."""
