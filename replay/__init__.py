"""The ``replay`` side of trainio, in rooms: ``projection/`` (what-if from the SimPy model),
``storage/`` (the one storage-client layer: targets, fio, Ceph, S3), ``real/`` (replay of a trace on
real storage), ``calibration/`` (measure storage, write profiles) and ``cli/`` (one module per subcommand)."""
