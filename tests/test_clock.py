"""The hybrid logical clock and the clock-skew rule."""

import pytest

from schema.clock import Hlc, HybridClock, stamp_incoming


class Wall:
    """A physical clock the test moves by hand."""

    def __init__(self, ms):
        self.ms = ms

    def __call__(self):
        return self.ms


def test_hlc_strings_sort_like_times():
    times = [Hlc(5, 0), Hlc(5, 1), Hlc(10, 0), Hlc(1_000_000_000_000, 3)]
    assert sorted(map(str, times)) == list(map(str, times))
    assert Hlc.parse(str(times[-1])) == times[-1]


@pytest.mark.parametrize("bad", ["", "12-3", "000000000000000x-000000", "0000000000000001000000"])
def test_a_malformed_hlc_is_refused(bad):
    with pytest.raises(ValueError):
        Hlc.parse(bad)


def test_a_clock_that_stands_still_still_moves_forward():
    clock = HybridClock(wall_ms=Wall(100))
    assert [clock.now(), clock.now(), clock.now()] == [Hlc(100, 0), Hlc(100, 1), Hlc(100, 2)]


def test_a_change_made_after_seeing_another_sorts_after_it_even_with_a_slow_wall_clock():
    clock = HybridClock(wall_ms=Wall(100))
    clock.observe("0000000000005000-000007")
    assert clock.now() > Hlc(5000, 7)


def test_a_change_too_far_ahead_is_restamped_and_the_server_clock_does_not_absorb_it():
    wall = Wall(1_000_000)
    server = HybridClock(wall_ms=wall)
    skewed = str(Hlc(1_000_000 + 3 * 3600 * 1000))
    stamp = stamp_incoming(skewed, server, max_ahead_ms=120_000)
    assert (stamp.restamped, stamp.original_hlc, stamp.hlc) == (True, skewed, str(Hlc(1_000_000)))
    assert server.last < Hlc.parse(skewed)
    assert stamp.ahead_ms == 3 * 3600 * 1000


def test_a_change_within_the_bound_keeps_its_time_and_the_server_clock_moves_past_it():
    server = HybridClock(wall_ms=Wall(1_000_000))
    ahead = str(Hlc(1_000_000 + 60_000, 2))
    stamp = stamp_incoming(ahead, server, max_ahead_ms=120_000)
    assert (stamp.restamped, stamp.hlc) == (False, ahead)
    assert server.now() > Hlc.parse(ahead)
