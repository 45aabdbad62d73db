import threading

import pytest
from django.db import connection

from batchjobs.models import DatasetGroup, Status, StatusTransition


@pytest.fixture
def group(db):
    return DatasetGroup.objects.create(name="g1")


def test_a_new_resource_starts_pending_with_one_history_row(group):
    assert group.status == Status.CREATE_PENDING
    assert [t.status for t in group.transitions.all()] == ["CREATE PENDING"]


def test_it_walks_pending_in_progress_active_and_records_each_step(group):
    assert group.start()
    assert group.succeed("done")
    group.refresh_from_db()
    assert group.status == "ACTIVE"
    assert [t.status for t in group.transitions.all()] == ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]
    assert group.transitions.last().message == "done"


def test_a_second_racing_transition_loses(group):
    stale = DatasetGroup.objects.get(pk=group.pk)
    assert group.start() is True
    assert stale.start() is False
    assert group.transitions.filter(status=Status.CREATE_IN_PROGRESS).count() == 1


def test_it_refuses_to_skip_in_progress(group):
    assert group.succeed() is False
    group.refresh_from_db()
    assert group.status == Status.CREATE_PENDING


def test_a_finished_resource_cannot_fail_afterwards(group):
    group.start()
    group.succeed()
    assert group.fail("late failure") is False
    group.refresh_from_db()
    assert group.status == "ACTIVE" and group.failure_reason == ""


def test_fail_saves_the_reason_and_moves_last_updated(group):
    before = group.last_updated
    group.start()
    assert group.fail("Invalid S3 input path")
    group.refresh_from_db()
    assert group.status == "CREATE FAILED"
    assert group.failure_reason == "Invalid S3 input path"
    assert group.last_updated > before


@pytest.mark.django_db(transaction=True)
def test_only_one_of_many_concurrent_starters_wins():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    group = DatasetGroup.objects.create(name="raced")
    results = []
    barrier = threading.Barrier(6)

    def start():
        from django.db import connection as thread_connection

        barrier.wait()
        results.append(DatasetGroup.objects.get(pk=group.pk).start())
        thread_connection.close()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert StatusTransition.objects.filter(object_id=group.pk, status=Status.CREATE_IN_PROGRESS).count() == 1
