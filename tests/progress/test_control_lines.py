"""The control-line parser: what a workload's `::cortex` line sets, and which lines set nothing."""

from __future__ import annotations

import pytest

from app.jobs.control_lines import (
    MAX_LINE_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_URL_CHARS,
    ControlUpdate,
    parse_control_line,
    parse_control_lines,
)


class TestValidLines:
    @pytest.mark.parametrize(
        ("line", "columns"),
        [
            (
                '::cortex {"progress": 40, "message": "shard 3/8"}',
                {"progress": 40, "status_message": "shard 3/8"},
            ),
            ('::cortex {"progress": 0}', {"progress": 0}),
            ('::cortex {"progress": 100}', {"progress": 100}),
            ('::cortex {"progress": 99.9}', {"progress": 99}),
            ('::cortex {"progress": 40.0}', {"progress": 40}),
            ('::cortex {"progress": null}', {"progress": None}),
            ('::cortex {"message": ""}', {"status_message": None}),
            (
                '::cortex {"outputUrl": "https://example.com/out/run-17.tar.gz"}',
                {"output_url": "https://example.com/out/run-17.tar.gz"},
            ),
            (
                '::cortex {"outputUrl": "http://10.0.0.5:8080/x"}',
                {"output_url": "http://10.0.0.5:8080/x"},
            ),
            ('::cortex\t{"progress": 5}  \r', {"progress": 5}),
            ('::cortex   {"message": "café ✓"}', {"status_message": "café ✓"}),
        ],
    )
    def test_sets_what_it_names(self, line: str, columns: dict[str, object]) -> None:
        assert parse_control_line(line) == ControlUpdate(columns)

    def test_the_limits_themselves_are_accepted(self) -> None:
        message = "m" * MAX_MESSAGE_CHARS
        url = "https://example.com/" + "a" * (MAX_URL_CHARS - len("https://example.com/"))
        assert parse_control_line(f'::cortex {{"message": "{message}"}}') == ControlUpdate(
            {"status_message": message}
        )
        assert parse_control_line(f'::cortex {{"outputUrl": "{url}"}}') == ControlUpdate(
            {"output_url": url}
        )


class TestIgnoredLines:
    @pytest.mark.parametrize(
        "line",
        [
            "plain output",
            "",
            'progress 40 ::cortex {"progress": 40}',  # not at the start
            ' ::cortex {"progress": 40}',
            '::cortex{"progress": 40}',  # no space after the prefix
            '::cortexx {"progress": 40}',
            "::cortex",
            "::cortex ",
            "::cortex {not json}",
            '::cortex {"progress": 40',
            '::cortex [{"progress": 40}]',
            '::cortex "progress"',
            "::cortex {}",
            '::cortex {"progress": 101}',
            '::cortex {"progress": -1}',
            '::cortex {"progress": "40"}',
            '::cortex {"progress": true}',
            '::cortex {"progress": NaN}',
            '::cortex {"progress": Infinity}',
            '::cortex {"progress": 1e400}',
            '::cortex {"message": 40}',
            '::cortex {"message": "a\\u0000b"}',
            '::cortex {"message": "two\\nlines"}',
            f'::cortex {{"message": "{"m" * (MAX_MESSAGE_CHARS + 1)}"}}',
            '::cortex {"outputUrl": "ftp://example.com/x"}',
            '::cortex {"outputUrl": "javascript:alert(1)"}',
            '::cortex {"outputUrl": "https://"}',
            '::cortex {"outputUrl": "/relative/path"}',
            '::cortex {"outputUrl": "https://exa mple.com/"}',
            f'::cortex {{"outputUrl": "https://example.com/{"a" * MAX_URL_CHARS}"}}',
            '::cortex {"progress": 40, "eta": 12}',  # an unknown key: nothing of it applies
            '::cortex {"progres": 40}',
            '::cortex {"progress": 40, "message": "x", "outputUrl": "https://e.com", "x": 1}',
            '::cortex {"progress": 40}' + " " * MAX_LINE_CHARS + "x",
        ],
    )
    def test_sets_nothing(self, line: str) -> None:
        assert parse_control_line(line) is None

    def test_a_line_past_the_length_limit_is_never_parsed(self) -> None:
        padded = '::cortex {"message": "' + "m" * MAX_LINE_CHARS + '"}'
        assert parse_control_line(padded) is None


class TestSeveralLines:
    def test_later_lines_win_per_key_and_other_lines_are_skipped(self) -> None:
        update = parse_control_lines(
            [
                '::cortex {"progress": 10, "message": "loading"}',
                "ordinary output",
                '::cortex {"progress": 500}',  # ignored: out of range
                '::cortex {"progress": 20}',
                '::cortex {"outputUrl": "https://example.com/r"}',
            ]
        )
        assert update == ControlUpdate(
            {"progress": 20, "status_message": "loading", "output_url": "https://example.com/r"}
        )

    def test_no_control_lines_is_none(self) -> None:
        assert parse_control_lines(["a", "b", '::cortex {"bad": 1}']) is None
