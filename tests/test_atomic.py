import pytest

from advlit.atomic import atomic_write


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "sub" / "result.txt"
    atomic_write(path, lambda tmp: tmp.write_text("first"))
    assert path.read_text() == "first"

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["result.txt"]
