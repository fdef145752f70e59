import math

import pytest
import simpy

from trainio.models.fluid import FluidError, FluidPool, Station
from trainio.models.storage import RateLimiter, SharedBandwidth, StorageModelError


def finish_times(env, events):
    times = {}
    for name, event in events.items():
        event.callbacks.append(lambda _e, name=name: times.__setitem__(name, env.now))
    env.run()
    return times


def test_transfers_share_the_aggregate_equally_and_the_survivor_speeds_up():
    env = simpy.Environment()
    pool = SharedBandwidth(env, aggregate=100.0, per_stream=math.inf)
    times = finish_times(env, {"small": pool.transfer(0, 100.0), "large": pool.transfer(0, 200.0)})
    # both at 50 B/s until the small one is done at 2 s; then 100 B/s for the last 100 bytes
    assert times == pytest.approx({"small": 2.0, "large": 3.0})


def test_one_stream_never_exceeds_the_per_stream_rate():
    env = simpy.Environment()
    pool = SharedBandwidth(env, aggregate=100.0, per_stream=10.0)
    assert finish_times(env, {"only": pool.transfer(0, 100.0)}) == pytest.approx({"only": 10.0})


def test_a_client_held_back_by_its_link_leaves_the_rest_to_the_others():
    env = simpy.Environment()
    pool = SharedBandwidth(env, aggregate=50.0, per_stream=math.inf, per_client=30.0, clients=2)
    events = {f"busy{i}": pool.transfer(0, 1000.0) for i in range(3)}
    events["lone"] = pool.transfer(1, 20.0)
    # client 0's three streams are capped at 30/3 = 10 each; the lone stream gets the other 20 B/s
    assert finish_times(env, events)["lone"] == pytest.approx(1.0)


def test_unlimited_bandwidth_is_instantaneous_and_zero_capacity_is_refused():
    env = simpy.Environment()
    pool = SharedBandwidth(env, aggregate=math.inf, per_stream=math.inf)
    assert finish_times(env, {"x": pool.transfer(0, 1e12)}) == {"x": 0.0}
    with pytest.raises(StorageModelError, match=r"aggregate\(=0\) must be > 0"):
        SharedBandwidth(env, aggregate=0, per_stream=1.0)


def test_rate_limiter_admits_requests_one_per_interval_first_come_first_served():
    env = simpy.Environment()
    limiter = RateLimiter(env, rate=10.0)
    assert [limiter.delay() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert RateLimiter(env, rate=math.inf).delay() == 0.0


def fluid_pool(env, **limits):
    stations = {"bandwidth": Station(100.0, math.inf), "cores": Station(8.0, 1.0)}
    return FluidPool(env, stations, limits)


def test_a_fluid_job_alone_takes_its_delay_plus_its_station_time():
    env = simpy.Environment()
    pool = fluid_pool(env)
    done = pool.run(0.5, {"bandwidth": 100.0, "cores": 2.0})
    assert finish_times(env, {"job": done}) == pytest.approx({"job": 3.5})
    assert done.value == {"bandwidth": 0.0, "cores": 0.0}


def test_fluid_jobs_saturating_a_station_move_exactly_its_capacity():
    env = simpy.Environment()
    pool = fluid_pool(env)
    times = finish_times(env, {i: pool.run(0.0, {"bandwidth": 100.0}) for i in range(10)})
    assert max(times.values()) == pytest.approx(10.0)  # 1000 bytes at 100 B/s


def test_fluid_speed_follows_mean_value_analysis_between_the_limits():
    # Four jobs of 1.05 s latency and 0.9 s alone on one bandwidth server: exact MVA gives a
    # cycle of 3.6893 s for a population of four (between 1.95 s alone and 4 * 0.9 saturated).
    env = simpy.Environment()
    pool = fluid_pool(env)
    times = finish_times(env, {i: pool.run(1.05, {"bandwidth": 90.0}) for i in range(4)})
    assert max(times.values()) == pytest.approx(3.6893, abs=1e-3)


def test_as_many_jobs_as_cores_run_at_full_speed_and_more_share_them():
    env = simpy.Environment()
    pool = FluidPool(env, {"cores": Station(2.0, 1.0)})
    assert max(finish_times(env, {i: pool.run(0.0, {"cores": 1.0}) for i in range(2)}).values()) == pytest.approx(1.0)
    env = simpy.Environment()
    pool = FluidPool(env, {"cores": Station(2.0, 1.0)})
    assert max(finish_times(env, {i: pool.run(0.0, {"cores": 1.0}) for i in range(3)}).values()) == pytest.approx(1.5)


def test_a_multi_server_station_follows_load_dependent_mean_value_analysis():
    # Three jobs of 1 s latency and 1 s on two cores: exact MVA with a two-server station gives a
    # cycle of 2.125 s (an arriving job finds 0, 1, 2 others with p = 1/4, 1/2, 1/4 and waits
    # only when both cores are taken: 1/4 * 0.5 s).
    env = simpy.Environment()
    pool = FluidPool(env, {"cores": Station(2.0, 1.0)})
    times = finish_times(env, {i: pool.run(1.0, {"cores": 1.0}) for i in range(3)})
    assert max(times.values()) == pytest.approx(2.125, abs=1e-6)


def test_a_job_that_only_decodes_is_not_slowed_by_jobs_that_only_read():
    env = simpy.Environment()
    pool = fluid_pool(env)
    events = {f"read{i}": pool.run(0.0, {"bandwidth": 100.0}) for i in range(3)}
    events["decode"] = pool.run(0.0, {"cores": 1.0})
    assert finish_times(env, events)["decode"] == pytest.approx(1.0, rel=0.02)


def test_a_limit_caps_the_summed_use_of_all_jobs():
    env = simpy.Environment()
    pool = fluid_pool(env, outstanding=2.0)
    # four jobs each holding an outstanding slot all the time, but only two slots
    times = finish_times(env, {i: pool.run(1.0, {"outstanding": 1.0}) for i in range(4)})
    assert max(times.values()) == pytest.approx(2.0)


def test_fluid_jobs_name_unknown_resources():
    with pytest.raises(FluidError, match="unknown resource 'disk'"):
        fluid_pool(simpy.Environment()).run(1.0, {"disk": 1.0})
