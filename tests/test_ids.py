"""Request and order id allocators: never reused, across threads and across restarts."""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings, strategies as st

from ibframe.ids import REQUEST_ID_BASE, OrderIdError, OrderIds, RequestIds


def test_request_ids_are_unique_across_threads():
    ids = RequestIds()
    taken: list[int] = []
    lock = threading.Lock()

    def worker():
        mine = [ids.take() for _ in range(2000)]
        with lock:
            taken.extend(mine)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == len(set(taken)) == 16000
    assert min(taken) >= REQUEST_ID_BASE


def test_order_ids_need_seeding():
    with pytest.raises(OrderIdError, match="nextValidId"):
        OrderIds().take()


def test_order_ids_unique_across_threads(tmp_path):
    ids = OrderIds(tmp_path / "ids.txt")
    ids.seed(1)
    taken, lock = [], threading.Lock()

    def worker():
        mine = [ids.take() for _ in range(300)]
        with lock:
            taken.extend(mine)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 1201))


@settings(deadline=None)   # each example fsyncs the id file
@given(first_seed=st.integers(1, 10_000), used=st.integers(0, 50), restart_seed=st.integers(1, 20_000))
def test_restart_never_reissues_even_if_next_valid_id_goes_back(tmp_path_factory, first_seed, used, restart_seed):
    path = tmp_path_factory.mktemp("ids") / "order-ids.txt"
    before = OrderIds(path)
    before.seed(first_seed)
    issued = {before.take() for _ in range(used)}
    after = OrderIds(path)                 # a new process reading the same file
    after.seed(restart_seed)               # TWS may report a lower id (e.g. orders were never transmitted)
    new = {after.take() for _ in range(5)}
    assert not issued & new
    assert min(new) >= max(issued | {0}) + 1 or not issued


def test_reseeding_with_a_higher_id_moves_forward(tmp_path):
    ids = OrderIds(tmp_path / "x")
    ids.seed(10)
    assert ids.take() == 10
    ids.seed(100)
    assert ids.take() == 100
    ids.seed(5)
    assert ids.take() == 101


def test_corrupt_id_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("garbage")
    with pytest.raises(OrderIdError, match="not an integer"):
        OrderIds(path)


def test_the_next_block_is_reserved_ahead_so_the_order_path_waits_for_one_fsync_only(tmp_path):
    path = tmp_path / "ids.txt"
    ids = OrderIds(path, block=100)
    ids.seed(1)
    issued = []
    for _ in range(1000):
        issued.append(ids.take())
        assert int(path.read_text()) > issued[-1]         # every id handed out is covered by the file
        ids.wait_ahead()                                  # a disk that keeps up with half a block of orders
    assert issued == list(range(1, 1001))
    assert ids.sync_persists == 1 and ids.ahead_persists >= 9   # only the very first order waited for a write
    after = OrderIds(path)                                # a restart: TWS says 1 again
    assert after.seed(1) > issued[-1]


def test_without_waiting_for_the_background_no_id_is_ever_uncovered(tmp_path):
    path = tmp_path / "ids.txt"
    ids = OrderIds(path, block=10)
    ids.seed(500)
    for _ in range(2000):                                 # faster than the background writes: the order path
        value = ids.take()                                # persists itself whenever the reservation is short
        assert int(path.read_text()) > value
    ids.wait_ahead()
    assert OrderIds(path).seed(0) > value


def test_a_jump_from_next_valid_id_is_covered_before_the_id_is_issued(tmp_path):
    path = tmp_path / "ids.txt"
    ids = OrderIds(path, block=100)
    ids.seed(1)
    ids.take()
    ids.seed(1_000_000)                                   # TWS's nextValidId far above the reservation
    assert ids.take() == 1_000_000 and int(path.read_text()) > 1_000_000


def test_after_close_every_reservation_is_made_on_the_order_path_and_still_covers(tmp_path):
    path = tmp_path / "ids.txt"
    ids = OrderIds(path, block=10)
    ids.seed(1)
    ids.take()
    ids.close()                                           # the engine stopped: no background writer any more
    for _ in range(50):
        value = ids.take()
        assert int(path.read_text()) > value
    assert ids.sync_persists >= 5
