"""Previews of a CSV's start and the CLI's table of them."""

from __future__ import annotations

import pytest

from services.poller.results.cli import table
from services.poller.results.files import parse_preview
from services.poller.results.sink_pg import shown_url, split_url, table_name


def test_a_cut_off_last_record_is_dropped_and_quoted_newlines_stay_in_their_field() -> None:
    data = b'name,note,n\na,"two\nlines",1\nb,plain,2\nc,cut o'
    seen = parse_preview(data, rows=10, ended=False)
    assert seen.columns == ["name", "note", "n"]
    assert seen.rows == [["a", "two\nlines", "1"], ["b", "plain", "2"]]
    assert seen.complete is False


def test_a_file_that_ended_within_the_preview_is_complete_and_never_longer_than_asked() -> None:
    data = b"x,y\n1,2\n3,4\n"
    assert parse_preview(data, rows=5, ended=True).complete is True
    short = parse_preview(data, rows=1, ended=True)
    assert short.rows == [["1", "2"]]
    assert short.complete is False
    assert parse_preview(b"", rows=5, ended=True).columns == []


def test_numbers_are_right_aligned_and_text_left_aligned_blanks_aside() -> None:
    shown = table(["name", "clicks"], [["alpha", "7"], ["b", "1234"], ["c", ""]]).splitlines()
    assert shown == [
        "name   clicks",
        "-----  ------",
        "alpha       7",
        "b        1234",
        "c",
    ]


def test_the_sinks_url_loses_its_schema_parameter_and_shows_no_password() -> None:
    dsn, schema = split_url("postgresql://u:secret@db:5432/amc?schema=results&sslmode=require")
    assert (dsn, schema) == ("postgresql://u:secret@db:5432/amc?sslmode=require", "results")
    assert split_url("postgresql://db/amc")[1] == "amc_results"
    assert shown_url("postgresql://u:secret@db:5432/amc?x=1") == "postgresql://u@db:5432/amc"
    with pytest.raises(ValueError, match="schema="):
        split_url("postgresql://db/amc?schema=Bad;drop")


def test_workflow_ids_become_identifiers_a_person_can_type() -> None:
    assert table_name("wf-daily") == "wf_daily"
    assert table_name("adhoc:3f2a") == "adhoc_3f2a"
    assert table_name("2024 Report") == "wf_2024_report"
    assert len(table_name("x" * 200)) <= 63
