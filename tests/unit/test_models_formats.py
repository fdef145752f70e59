import pytest

from trainio.models.formats import LARGE_REQUEST_BYTES, FormatError, RecordFormat, parse_format


def test_formats_parse_and_print_back():
    assert parse_format("files") == RecordFormat("files")
    assert parse_format("preload") == RecordFormat("preload")
    shards = parse_format("shards:256MiB")
    assert shards.shard_bytes == 256 * 2**20
    assert str(shards) == "shards:256MiB"


def test_shards_are_read_in_large_requests_never_larger_than_a_shard():
    assert parse_format("shards:256MiB").request_bytes == LARGE_REQUEST_BYTES
    assert parse_format("shards:1MiB").request_bytes == 2**20
    assert parse_format("preload").request_bytes == LARGE_REQUEST_BYTES
    assert parse_format("files").request_bytes is None


@pytest.mark.parametrize("text", ["tar", "shards", "shards:", "shards:big", "shards:0", "files:1MiB", "preload:8", ""])
def test_unparseable_formats_name_the_text(text):
    with pytest.raises(FormatError, match=f"format {text!r}"):
        parse_format(text)
