import pytest

from alster_mapping.core.time_sync import ApproximateTimeSync

MS = 1_000_000


def test_pairs_within_slop_in_any_arrival_order():
    sync = ApproximateTimeSync(2, slop_ns=5 * MS)
    out = []
    out += sync.add(0, 100 * MS, "c100")
    out += sync.add(0, 133 * MS, "c133")
    out += sync.add(1, 134 * MS, "d134")  # newer depth first
    out += sync.add(1, 102 * MS, "d102")  # older than the emitted 134: late -> dropped
    assert out == [(133 * MS, ("c133", "d134"))]
    # c100 became stale when 133 was matched.
    assert sync.stats == {"matched": 1, "dropped": 2, "duplicates": 0, "resets": 0}


def test_out_of_order_within_queue():
    sync = ApproximateTimeSync(2, slop_ns=5 * MS)
    assert sync.add(1, 203 * MS, "d203") == []
    assert sync.add(1, 170 * MS, "d170") == []
    assert sync.add(0, 168 * MS, "c168") == [(168 * MS, ("c168", "d170"))]
    assert sync.add(0, 200 * MS, "c200") == [(200 * MS, ("c200", "d203"))]
    assert sync.stats["matched"] == 2 and sync.pending == 0


def test_three_streams_pick_smallest_spread():
    sync = ApproximateTimeSync(3, slop_ns=10 * MS)
    sync.add(0, 100 * MS, "c")
    sync.add(1, 92 * MS, "d92")
    sync.add(1, 103 * MS, "d103")
    # 109 is within 10 ms of 103 and 100 but not of 92.
    assert sync.add(2, 109 * MS, "l") == [(100 * MS, ("c", "d103", "l"))]
    assert sync.stats["dropped"] == 1  # d92 went stale


def test_no_match_beyond_slop():
    sync = ApproximateTimeSync(2, slop_ns=5 * MS)
    assert sync.add(0, 0, "c") == []
    assert sync.add(1, 6 * MS, "d") == []
    assert sync.pending == 2


def test_duplicates_counted_and_dropped():
    sync = ApproximateTimeSync(2, slop_ns=MS)
    sync.add(0, 10, "a")
    assert sync.add(0, 10, "a-again") == []
    assert sync.add(1, 10, "b") == [(10, ("a", "b"))]
    assert sync.add(1, 10, "b-again") == []  # already matched
    assert sync.stats == {"matched": 1, "dropped": 0, "duplicates": 2, "resets": 0}


def test_queue_overflow_drops_oldest():
    sync = ApproximateTimeSync(2, slop_ns=MS, queue_size=3)
    for i in range(5):
        sync.add(0, i * 100 * MS, i)
    assert sync.pending == 3 and sync.stats["dropped"] == 2
    assert sync.add(1, 100 * MS, "d") == []  # stamp 100 ms was dropped
    assert sync.add(1, 400 * MS, "d") == [(400 * MS, (4, "d"))]


def test_single_stream_and_validation():
    sync = ApproximateTimeSync(1, slop_ns=0)
    assert sync.add(0, 5, "x") == [(5, ("x",))]
    with pytest.raises(ValueError):
        sync.add(1, 5, "x")
    with pytest.raises(ValueError):
        ApproximateTimeSync(0, 1)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, -1)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, 1, queue_size=0)


def test_reset_after_a_jump_back_matches_older_stamps_again():
    sync = ApproximateTimeSync(2, slop_ns=5 * MS)
    sync.add(0, 500 * MS, "c500")
    assert sync.add(1, 500 * MS, "d500") == [(500 * MS, ("c500", "d500"))]
    sync.add(0, 520 * MS, "c520")  # pending when time jumps back
    assert sync.add(0, 100 * MS, "c100") == []  # late: dropped until reset
    sync.reset()
    assert sync.pending == 0
    sync.add(0, 100 * MS, "c100")
    assert sync.add(1, 101 * MS, "d101") == [(100 * MS, ("c100", "d101"))]
    assert sync.stats == {"matched": 2, "dropped": 2, "duplicates": 0, "resets": 1}
