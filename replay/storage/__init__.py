"""The storage-client layer under replay on real storage and calibration: one target grammar
(:mod:`.target`), one fio runner and reader (:mod:`.fio`), one Ceph client side (:mod:`.ceph`, with the
libcephfs helper), one S3 client (:mod:`.s3`), directories (:mod:`.directory`), the bytes trainio
writes (:mod:`.seeded`) and the one error of them all (:mod:`.errors`)."""
