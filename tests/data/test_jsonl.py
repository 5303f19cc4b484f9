"""iter_jsonl: blank lines skipped, line numbers kept, errors in the caller's class and wording."""
import pytest

from diffucode.data.jsonl import iter_jsonl


class MyError(ValueError):
    pass


def test_reads_records_with_line_numbers(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"x": 1}\n\n   \n[2, 3]\n', encoding="utf-8")
    rows = list(iter_jsonl(p))
    assert [(r.lineno, r.where, r.record) for r in rows] == [(1, f"{p}:1", {"x": 1}), (4, f"{p}:4", [2, 3])]


def test_bad_json_names_file_and_line_in_the_callers_words(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"x": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(MyError, match=rf"^{p}:2: not valid JSON: Expecting property name"):
        list(iter_jsonl(p, error_cls=MyError))
    with pytest.raises(MyError, match=rf"^--f {p}, line 2: bad \(Expecting property name enclosed in double quotes, col 2\)$"):
        list(iter_jsonl(p, error_cls=MyError, where="--f {path}, line {lineno}",
                        bad_json="{where}: bad ({error.msg}, col {error.colno})"))


def test_objects_only_and_given_lines():
    lines = ['{"a": 1}', "", '"text"']
    with pytest.raises(MyError, match=r"^x.gz:3: expected a JSON object, got str$"):
        list(iter_jsonl("x.gz", lines=lines, error_cls=MyError, objects_only=True))
    assert [r.record for r in iter_jsonl("x.gz", lines=lines)] == [{"a": 1}, "text"]


def test_lazy_stops_before_a_later_bad_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\nnot json\n', encoding="utf-8")
    first = next(iter(iter_jsonl(p)))
    assert first.record == {"a": 1}
