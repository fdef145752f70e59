import math

import pytest

from trainio.models.units import (
    UnitError,
    bandwidth_text,
    bytes_text,
    duration_text,
    format_size,
    parse_bandwidth,
    parse_duration,
    parse_rate,
    parse_size,
    rate_text,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4KiB", 4096), ("256MiB", 256 * 2**20), ("1.5 GB", 1.5e9), (4096, 4096), ("4096", 4096), ("inf", math.inf)],
)
def test_sizes_parse_to_bytes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("0.08 ms", 80e-6), ("2us", 2e-6), ("1.5 s", 1.5), ("3 min", 180.0)])
def test_durations_parse_to_seconds(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 GB/s", 2e9),
        ("500MiB/s", 500 * 2**20),
        ("25 Gbit/s", 25e9 / 8),
        ("25Gb/s", 25e9 / 8),
        ("100 Mbps", 100e6 / 8),
        ("unlimited", math.inf),
    ],
)
def test_bandwidths_parse_to_bytes_per_second_and_bits_are_divided_by_eight(text, expected):
    assert parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "expected"), [("20000 IOPS", 20000), ("1e5/s", 1e5), ("4.4 kIOPS", 4400)])
def test_rates_parse_to_operations_per_second(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


def test_a_duration_where_a_bandwidth_is_expected_names_the_key_and_the_value():
    with pytest.raises(UnitError, match=r"stream_bandwidth\(='2 ms'\).*'ms' is not a bandwidth unit"):
        parse_bandwidth("2 ms", "stream_bandwidth")


@pytest.mark.parametrize(
    ("parse", "text"),
    [(parse_duration, "5"), (parse_duration, 5), (parse_size, "-1 KiB"), (parse_rate, "fast"), (parse_size, True)],
)
def test_missing_negative_or_garbled_quantities_are_unit_errors(parse, text):
    with pytest.raises(UnitError, match="read_latency"):
        parse(text, "read_latency")


def test_format_size_spells_shard_sizes_back_exactly():
    assert format_size(256 * 2**20) == "256MiB"
    assert format_size(1e9) == "1GB"
    assert format_size(1000) == "1kB"
    assert format_size(1234) == "1234B"


@pytest.mark.parametrize("seconds", [3.2e-7, 5e-6, 999.96e-6, 2.1157e-3, 0.9999, 12.5, 4321.0])
def test_durations_are_written_as_unit_strings_that_parse_back(seconds):
    assert parse_duration(duration_text(seconds)) == pytest.approx(seconds, rel=1e-3)


@pytest.mark.parametrize("rate", [900.0, 1.5 * 2**20, 1023.99 * 2**20, 2.737 * 2**30, 5e12])
def test_bandwidths_and_rates_are_written_as_unit_strings_that_parse_back(rate):
    assert parse_bandwidth(bandwidth_text(rate)) == pytest.approx(rate, rel=1e-3)
    assert parse_rate(rate_text(rate)) == pytest.approx(rate, rel=1e-3)


def test_unlimited_bandwidths_and_rates_parse_back_as_unlimited():
    assert bandwidth_text(math.inf) == rate_text(math.inf) == "unlimited"
    assert parse_bandwidth(bandwidth_text(math.inf)) == parse_rate(rate_text(math.inf)) == math.inf


def test_a_rate_below_one_request_per_second_is_written_as_one():
    assert rate_text(0.2) == "1 IOPS" and parse_rate(rate_text(0.2)) == 1.0


@pytest.mark.parametrize("nbytes", [0, 999, 1000, 7_022_041, 999_949_999, 2.5e12, 7.3e15])
def test_sizes_to_read_at_a_glance_parse_back_to_their_one_decimal(nbytes):
    text = bytes_text(nbytes)
    assert parse_size(text) == pytest.approx(nbytes, rel=0.05, abs=0.5)
    assert bytes_text(7_022_041) == "7.0 MB" and bytes_text(999) == "999 B"
