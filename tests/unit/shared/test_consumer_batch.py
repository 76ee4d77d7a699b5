"""Which records of a batch get a savepoint after handler failures."""

from __future__ import annotations

from shared.consumer_batch import Guards


def test_no_record_is_guarded_before_a_failure() -> None:
    guards = Guards(10)
    assert [i for i in range(10) if i in guards] == []


def test_the_first_failure_guards_that_record_alone() -> None:
    guards = Guards(10)
    guards.failed(4)
    assert [i for i in range(10) if i in guards] == [4]


def test_a_second_failure_guards_every_record_from_it_on() -> None:
    guards = Guards(10)
    guards.failed(4)
    guards.failed(7)
    assert [i for i in range(10) if i in guards] == [4, 7, 8, 9]
    # A record before that fails too (a handler that fails only sometimes) moves the start
    # back, so each pass guards more and the passes end.
    guards.failed(2)
    assert [i for i in range(10) if i in guards] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_records_guarded_in_advance_do_not_count_as_failures() -> None:
    guards = Guards(10, indexes={1})
    guards.failed(5)
    assert [i for i in range(10) if i in guards] == [1, 5]
