import math
import re
from pathlib import Path

import pytest

from trainio.models.backend import BackendProfile, ProfileError, builtin_names, builtin_profile, load_profile

RGW = (Path(__file__).parents[2] / "models" / "profiles" / "rgw.toml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edited.toml"
    path.write_text(text)
    return path


def test_every_builtin_profile_loads_under_its_own_name():
    assert builtin_names() == ["cephfs", "local-nvme", "local-ssd", "nfs", "rbd", "rgw", "s3"]
    for name in builtin_names():
        profile = builtin_profile(name)
        assert profile.name == name
        assert profile.source and profile.description


def test_every_builtin_quantity_carries_a_comment_saying_where_it_comes_from():
    quantity = re.compile(
        r"^(\w+_latency|\w+_bandwidth|iops|max_outstanding|\w+_cpu|local_capacity_bytes) = (?!\"n/a\")"
    )
    for name in builtin_names():
        text = (Path(__file__).parents[2] / "models" / "profiles" / f"{name}.toml").read_text()
        lines = [line for line in text.splitlines() if quantity.match(line)]
        assert len(lines) >= 6, name
        for line in lines:
            assert "#" in line, f"{name}: {line}"


def test_profile_values_are_converted_to_si_units():
    rgw = builtin_profile("rgw")
    assert rgw.get_latency_s == pytest.approx(1.3e-3)
    assert (rgw.request_cpu_s, rgw.colocated_cpu_s) == pytest.approx((1.2e-3, 0.0))
    assert rgw.aggregate_bandwidth == pytest.approx(1.3 * 2**30)
    assert rgw.open_latency_s is None
    assert builtin_profile("local-ssd").max_outstanding == 32
    assert builtin_profile("nfs").max_outstanding == math.inf


def test_an_unknown_key_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path, RGW.replace("[backend]\n", '[backend]\nwrite_latency = "1 ms"\n'))
    with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*unknown key \[backend\] write_latency"):
        load_profile(path)


def test_a_missing_key_names_the_file_and_the_key(tmp_path):
    text = "\n".join(line for line in RGW.splitlines() if not line.startswith("iops"))
    path = write(tmp_path, text)
    with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*missing key \[backend\] iops"):
        load_profile(path)


def test_the_cpu_per_request_keys_are_optional_and_zero_when_absent(tmp_path):
    assert (builtin_profile("nfs").request_cpu_s, builtin_profile("nfs").colocated_cpu_s) == (0.0, 0.0)
    without = "\n".join(line for line in RGW.splitlines() if not line.startswith(("request_cpu", "colocated_cpu")))
    assert load_profile(write(tmp_path, without)).node_cpu_per_request_s == 0.0
    text = without.replace("[backend]\n", '[backend]\nrequest_cpu = "2.4 ms"\ncolocated_cpu = "1500 us"\n')
    profile = load_profile(write(tmp_path, text))
    assert (profile.request_cpu_s, profile.colocated_cpu_s) == pytest.approx((2.4e-3, 1.5e-3))
    assert profile.node_cpu_per_request_s == pytest.approx(3.9e-3)
    path = write(tmp_path, text.replace('request_cpu = "2.4 ms"', 'request_cpu = "n/a"'))
    with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*request_cpu"):
        load_profile(path)


def test_cpu_crowding_is_an_optional_plain_number_raising_the_cpu_per_request_above_its_base(tmp_path):
    assert (builtin_profile("rgw").cpu_crowding, builtin_profile("rgw").crowding_factor(64)) == (0.0, 1.0)
    text = RGW.replace("[backend]\n", "[backend]\ncpu_crowding = 0.5\ncpu_crowding_base = 0.5\n")
    profile = load_profile(write(tmp_path, text))
    assert (profile.cpu_crowding, profile.cpu_crowding_base) == (0.5, 0.5)
    assert profile.crowding_factor(2.0) == pytest.approx(2.0)  # 4x the base's processes per core
    assert profile.crowding_factor(0.25) == 1.0  # fewer than measured: never below the profile's CPU
    for bad, key in (('cpu_crowding = "0.5"', "cpu_crowding"), ("cpu_crowding = -0.1", "cpu_crowding")):
        path = write(tmp_path, text.replace("cpu_crowding = 0.5", bad))
        with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*{key}"):
            load_profile(path)
    path = write(tmp_path, text.replace("cpu_crowding_base = 0.5", "cpu_crowding_base = 0"))
    with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*cpu_crowding_base\(=0.0\) must be > 0"):
        load_profile(path)


NVME = (Path(__file__).parents[2] / "models" / "profiles" / "local-nvme.toml").read_text()


def test_write_bandwidth_and_local_capacity_are_node_local_keys_unknown_when_absent(tmp_path):
    text = "\n".join(line for line in NVME.splitlines() if not line.startswith(("write_bandwidth", "local_capacity")))
    bare = load_profile(write(tmp_path, text))
    assert (bare.write_bandwidth, bare.local_capacity_bytes) == (None, None)
    sized = load_profile(write(tmp_path, text + '\nwrite_bandwidth = "2 GB/s"\nlocal_capacity_bytes = 7680000000000\n'))
    assert (sized.write_bandwidth, sized.local_capacity_bytes) == (2e9, 7.68e12)
    with pytest.raises(ProfileError, match=r"write_bandwidth applies to access='posix', shared=False; give a value"):
        load_profile(write(tmp_path, text + '\nwrite_bandwidth = "n/a"\n'))
    with pytest.raises(ProfileError, match=r"local_capacity_bytes\(='lots'\)"):
        load_profile(write(tmp_path, text + '\nlocal_capacity_bytes = "lots"\n'))
    shared = RGW.replace("[backend]\n", '[backend]\nwrite_bandwidth = "n/a"\n')
    assert load_profile(write(tmp_path, shared)).write_bandwidth is None
    with pytest.raises(ProfileError, match=r"local_capacity_bytes\(='1 TB'\) does not apply here; write 'n/a'"):
        load_profile(write(tmp_path, RGW.replace("[backend]\n", '[backend]\nlocal_capacity_bytes = "1 TB"\n')))


def test_a_measured_crowding_curve_is_the_cpu_per_request_at_each_load_and_the_cells_ride_along(tmp_path):
    text = RGW.replace("[backend]\n", "[backend]\ncpu_crowding_curve = [[0.5, 1.0], [2.0, 0.8], [8.0, 1.2]]\n")
    text += '\n[[cells]]\nname = "get 4KiB qd1"\nper_core = 0.5\n'
    text = text.replace("[meta]\n", '[meta]\ncolocated = true\npause = "1.5 ms"\n')
    profile = load_profile(write(tmp_path, text))
    assert profile.crowding_factor(0.25) == 1.0 and profile.crowding_factor(2.0) == pytest.approx(0.8)
    assert profile.crowding_factor(4.0) == pytest.approx(1.0) and profile.crowding_factor(64) == pytest.approx(1.2)
    for bad, message in (
        ("cpu_crowding_curve = [[2.0, 1.0], [1.0, 1.0]]", "increasing"),
        ("cpu_crowding_curve = [0.5, 1.0]", "must be a list of [processes per core, factor] pairs"),
        ("cpu_crowding_curve = [[0.5, 1.0]]\ncpu_crowding = 0.2", "not both"),
    ):
        path = write(tmp_path, text.replace("cpu_crowding_curve = [[0.5, 1.0], [2.0, 0.8], [8.0, 1.2]]", bad))
        with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*{re.escape(message)}"):
            load_profile(path)
    for bad, message in (('colocated = "yes"', "colocated"), ('pause = "fast"', "pause")):
        path = write(
            tmp_path, text.replace(bad.split(" =")[0] + (" = true" if "colocated" in bad else ' = "1.5 ms"'), bad)
        )
        with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*\[meta\] {message}"):
            load_profile(path)


def test_a_value_with_the_wrong_unit_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path, RGW.replace('stream_bandwidth = "500 MiB/s"', 'stream_bandwidth = "2 ms"'))
    with pytest.raises(ProfileError, match=rf"{re.escape(str(path))}.*stream_bandwidth\(='2 ms'\)"):
        load_profile(path)


def test_not_applicable_is_refused_where_the_key_applies(tmp_path):
    path = write(tmp_path, RGW.replace('get_latency = "1.3 ms"', 'get_latency = "n/a"'))
    with pytest.raises(ProfileError, match="get_latency applies to access='object'"):
        load_profile(path)


def test_a_value_is_refused_where_the_key_does_not_apply(tmp_path):
    path = write(tmp_path, RGW.replace('open_latency = "n/a"', 'open_latency = "1 ms"'))
    with pytest.raises(ProfileError, match="open_latency.*does not apply"):
        load_profile(path)


@pytest.mark.parametrize("text", ["not toml = = 1", "[meta]\nname = 'x'\n"])
def test_unreadable_or_incomplete_files_are_profile_errors(tmp_path, text):
    with pytest.raises(ProfileError, match=re.escape(str(tmp_path))):
        load_profile(write(tmp_path, text))


def test_a_missing_file_is_a_profile_error_naming_it(tmp_path):
    with pytest.raises(ProfileError, match="cannot read profile .*nope.toml"):
        load_profile(tmp_path / "nope.toml")


def test_an_unknown_builtin_name_lists_the_known_ones():
    with pytest.raises(ProfileError, match="no built-in profile 'ceph'.*cephfs"):
        builtin_profile("ceph")


def test_a_profile_can_be_built_in_code_and_is_validated():
    fitted = BackendProfile(
        name="as-captured",
        access="posix",
        shared=True,
        page_cache=True,
        stream_bandwidth=400e6,
        aggregate_bandwidth=1e9,
        iops=20000,
        open_latency_s=1e-3,
        stat_latency_s=0.0,
        read_latency_s=2e-3,
        client_nic_bandwidth=math.inf,
    )
    assert fitted.request_latency_s == 2e-3
    with pytest.raises(ProfileError, match=r"aggregate_bandwidth\(=0\) must be > 0"):
        BackendProfile(
            name="x",
            access="object",
            shared=False,
            page_cache=False,
            stream_bandwidth=1,
            aggregate_bandwidth=0,
            iops=1,
            get_latency_s=0.0,
        )
    with pytest.raises(ProfileError, match="open_latency_s is required for access='posix'"):
        BackendProfile(
            name="x", access="posix", shared=False, page_cache=False, stream_bandwidth=1, aggregate_bandwidth=1, iops=1
        )
