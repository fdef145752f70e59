"""What a thread used over an event, and which samples the recorder measures."""

from __future__ import annotations

import mmap
import threading

from trainio.tracer import usage


def test_a_reading_is_cpu_faults_and_storage_bytes_of_this_thread():
    before = usage.thread_usage()
    # Touching fresh pages: minor faults. A mapping of its own, since a bytearray may reuse heap pages an
    # earlier test already faulted in.
    with mmap.mmap(-1, 8 << 20) as buffer:
        for i in range(0, len(buffer), mmap.PAGESIZE):
            buffer[i] = 1
    total = sum(range(200_000))  # CPU
    cpu, minflt, majflt, read_bytes = usage.delta(before, usage.thread_usage())
    assert total and cpu > 0 and minflt >= 1 and majflt >= 0 and read_bytes >= 0 and read_bytes % usage.BLOCK == 0


def test_the_python_readings_agree_with_the_c_one_in_shape():
    for reading in (usage._exact_rusage, usage._clock_and_rusage, usage.thread_usage):
        values = reading()
        assert len(values) == 4 and all(type(v) is int and v >= 0 for v in values)


def test_another_threads_work_is_not_this_threads():
    before = usage.thread_usage()
    worker = threading.Thread(target=lambda: sum(range(3_000_000)))
    worker.start()
    worker.join()
    assert usage.delta(before, usage.thread_usage())[0] < 20_000_000  # far less than the other thread's work


def test_the_gate_measures_every_sample_until_it_knows_how_long_samples_take():
    gate = usage.SampleGate()
    assert gate.threshold == usage.GATE_MASK + 1  # everything
    gate.after_fetch(cpu_ns=32 * 100 * gate.gap_ns, samples=32)  # samples far longer than the gap
    assert gate.threshold == usage.GATE_MASK + 1
    gate.after_fetch(cpu_ns=32 * gate.gap_ns // 10, samples=32)  # a tenth of the gap each
    assert abs(gate.threshold - (usage.GATE_MASK + 1) / 10) <= 2


def test_a_fixed_share_overrides_the_gate(monkeypatch):
    monkeypatch.setenv(usage.ENV_SAMPLE_SHARE, "0.25")
    gate = usage.SampleGate()
    gate.after_fetch(cpu_ns=1, samples=32)
    assert gate.threshold == 256


def test_a_kernel_whose_thread_cpu_time_lags_is_found_out(monkeypatch):
    """A tick-granular kernel reports no CPU for a 0.2 ms spin: the clock is used instead."""
    frozen = usage._getrusage(usage._THREAD)
    monkeypatch.setattr(usage, "_getrusage", lambda who: frozen)
    assert usage.rusage_cpu_is_exact(spin_ns=200_000) is False


def test_process_and_thread_cpu_come_from_proc():
    comm, utime, stime = usage.stat_cpu("/proc/self/stat")
    assert comm and utime >= 0 and stime >= 0
    threads = usage.threads_cpu(__import__("os").getpid(), {threading.get_native_id(): "MainThread"})
    assert any(t.get("python_name") == "MainThread" for t in threads)
