"""Replay on real storage: a trace's data reads become a storage-neutral schedule (:mod:`.schedule`),
rendered as fio iologs (:mod:`.iolog`, packed into shards by :mod:`.shards`), a plan for the libcephfs
helper or S3 GETs, replayed by ``replay fio`` (:mod:`.fioreplay`) and ``replay s3`` (:mod:`.s3replay`) and
reported in one result schema (:mod:`.result`, :mod:`.summary`). ``replay emulate`` (:mod:`.emulate`)
rebuilds the traced training pipeline (:mod:`.pipeline`) and runs it against the storage (:mod:`.loader`)."""
