"""One contract, two leases tables: DynamoDB (moto over HTTP) and the in-memory twin.

Every case runs against both, so logic tested on `MemoryLease`/`MemoryCheckpoints` relies
only on behaviour the DynamoDB `Lease`/`Checkpoints` have (engine/store/abc.py). Both kinds
of lease run: the consumer's (kept item, UpdateItem) and the reconcile lock's (PutItem,
DeleteItem on release).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from engine.app import Engine
from engine.exceptions import LeaseLostError
from engine.store.abc import CheckpointStore, LeaseHolder
from engine.store.leases import Checkpoint, Checkpoints, Lease, PendingEmission
from engine.store.memory import LeaseTable, MemoryCheckpoints, MemoryLease

pytestmark = pytest.mark.integration

KEY = "contract#lease"
KINDS = pytest.mark.parametrize("keep", [True, False], ids=["consumer-lease", "lock-lease"])


class Table:
    """Leases and checkpoints on one table, and who holds `KEY` now (by the wall clock)."""

    def __init__(
        self,
        lease: Callable[[str, bool, Callable[[], float]], LeaseHolder],
        checkpoints: Callable[[str], CheckpointStore],
        read: Callable[[], tuple[str, float] | None],
    ) -> None:
        self._lease, self.checkpoints, self._read = lease, checkpoints, read

    def lease(self, owner: str, keep: bool = True, at: float | None = None) -> LeaseHolder:
        return self._lease(owner, keep, (lambda: at) if at is not None else time.time)

    def holder(self) -> str | None:
        found = self._read()
        return found[0] if found and found[1] > time.time() else None


@pytest.fixture(params=["dynamodb", "memory"])
def table(request: pytest.FixtureRequest) -> Table:
    if request.param == "memory":
        memory = LeaseTable()

        def read_memory() -> tuple[str, float] | None:
            item = memory.item(KEY)
            return (str(item["owner"]), float(item["expires"])) if item else None

        return Table(
            lambda owner, keep, clock: MemoryLease(memory, KEY, 30, owner, clock, keep=keep),
            lambda arn: MemoryCheckpoints(memory, arn),
            read_memory,
        )
    engine: Engine = request.getfixturevalue("engine")
    ddb, name = engine.clients.dynamodb, engine.settings.leases_table

    def read_dynamo() -> tuple[str, float] | None:
        key = {"lease_key": {"S": KEY}}
        item = ddb.get_item(TableName=name, Key=key, ConsistentRead=True).get("Item")
        return (item["owner"]["S"], float(item["expires"]["N"])) if item else None

    return Table(
        lambda owner, keep, clock: Lease(ddb, name, KEY, 30, owner, clock, keep=keep),
        lambda arn: Checkpoints(ddb, name, arn),
        read_dynamo,
    )


@KINDS
def test_two_owners_racing_exactly_one_wins(table: Table, keep: bool) -> None:
    racers = [table.lease(f"owner-{n}", keep) for n in range(2)]
    start = threading.Barrier(len(racers))
    won: dict[str, bool] = {}

    def race(racer: LeaseHolder) -> None:
        start.wait()
        won[racer.owner] = racer.try_acquire()

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [owner for owner, ok in won.items() if ok]
    assert len(winners) == 1
    assert table.holder() == winners[0]
    loser = next(r for r in racers if r.owner != winners[0])
    assert loser.try_acquire() is False  # still held: the loser stays out


@KINDS
def test_expiry_hands_the_lease_over(table: Table, keep: bool) -> None:
    now = time.time()
    first = table.lease("first", keep, at=now)
    assert first.try_acquire()
    assert table.lease("second", keep, at=now + 29).try_acquire() is False
    assert table.lease("second", keep, at=now + 30).try_acquire() is False  # not yet past it
    second = table.lease("second", keep, at=now + 31)  # past the first's 30 s
    assert second.try_acquire()
    assert first.try_acquire() is False  # the old holder's renewal is refused


@KINDS
def test_the_holder_renews_its_own_lease(table: Table, keep: bool) -> None:
    now = time.time()
    assert table.lease("owner", keep, at=now).try_acquire()
    assert table.lease("owner", keep, at=now + 20).try_acquire()  # renewed to now + 50
    assert table.lease("other", keep, at=now + 40).try_acquire() is False


@KINDS
def test_release_by_a_non_owner_is_refused(table: Table, keep: bool) -> None:
    owner, other = table.lease("owner", keep), table.lease("other", keep)
    assert owner.try_acquire()
    other.release()  # refused without an error: not its lease
    assert table.holder() == "owner"
    assert other.try_acquire() is False
    owner.release()
    assert table.holder() is None
    assert other.try_acquire()


def test_checkpoints_round_trip_and_are_fenced_by_the_lease(table: Table) -> None:
    holder, other = table.lease("holder"), table.lease("other")
    assert holder.try_acquire() and not other.try_acquire()
    checkpoints = table.checkpoints("arn:stream")
    assert checkpoints.load(["s", "t"]) == {}
    saved = {"s": Checkpoint("10", False, "7"), "t": Checkpoint(None, True), "u": Checkpoint("")}
    checkpoints.save(saved, holder)
    assert checkpoints.load(["s", "t", "u", "v"]) == {
        "s": Checkpoint("10", False, "7"),
        "t": Checkpoint(None, True),
        "u": Checkpoint(None),  # an empty sequence is stored as none
    }
    with pytest.raises(LeaseLostError):
        checkpoints.save({"s": Checkpoint("99", True)}, other)
    assert checkpoints.load(["s"]) == {"s": Checkpoint("10", False, "7")}
    assert table.checkpoints("arn:other").load(["s"]) == {}  # keyed by the stream


def test_the_fence_is_the_owner_not_the_clock(table: Table) -> None:
    """A kept lease released (or expired) still fences its owner until another takes it."""
    now = time.time()
    holder = table.lease("holder", at=now)
    assert holder.try_acquire()
    holder.release()
    checkpoints = table.checkpoints("arn:stream")
    checkpoints.save({"s": Checkpoint("1")}, holder)
    assert table.lease("other", at=now).try_acquire()
    with pytest.raises(LeaseLostError):
        checkpoints.save({"s": Checkpoint("2")}, holder)
    assert checkpoints.load(["s"]) == {"s": Checkpoint("1")}


def test_a_released_lock_lease_fences_nothing(table: Table) -> None:
    lock = table.lease("holder", keep=False)
    assert lock.try_acquire()
    lock.release()  # the item is gone
    with pytest.raises(LeaseLostError):
        table.checkpoints("arn:stream").save({"s": Checkpoint("1")}, lock)


def test_a_pending_emission_is_begun_settled_or_dropped_under_the_fence(table: Table) -> None:
    holder, other = table.lease("holder"), table.lease("other")
    assert holder.try_acquire()
    checkpoints = table.checkpoints("arn:stream")
    assert checkpoints.load_pending() is None
    pending = PendingEmission("emission-1", {"s": Checkpoint("5", False), "t": Checkpoint("")})
    checkpoints.begin(pending, holder)
    assert checkpoints.load_pending() == PendingEmission(
        "emission-1", {"s": Checkpoint("5", False), "t": Checkpoint(None)}
    )
    with pytest.raises(LeaseLostError):
        checkpoints.drop_pending(other)
    with pytest.raises(LeaseLostError):
        checkpoints.begin(PendingEmission("emission-2", {}), other)
    checkpoints.save(pending.positions, holder, settle=True)  # phase two
    assert checkpoints.load_pending() is None
    assert checkpoints.load(["s"]) == {"s": Checkpoint("5", False)}
    checkpoints.begin(PendingEmission("emission-2", {}), holder)
    checkpoints.drop_pending(holder)
    assert checkpoints.load_pending() is None
    checkpoints.begin(PendingEmission("emission-3", {}), holder)
    checkpoints.save({}, holder, settle=True)  # settling alone
    assert checkpoints.load_pending() is None
