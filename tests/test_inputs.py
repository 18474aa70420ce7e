"""bench.inputs: folders, tasks files, generated inputs; every user error is one BenchError line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench.errors import BenchError
from bench.inputs import (
    EDIT_PROMPTS,
    Columns,
    TaskInput,
    from_dir,
    from_tasks_file,
    generated,
    generated_image,
    open_image,
    skipped_text,
)


def _png(path: Path, color: tuple[int, int, int] = (200, 10, 10)) -> Path:
    Image.new("RGB", (8, 8), color).save(path)
    return path


def test_from_dir_sorted_and_resolved(tmp_path: Path) -> None:
    _png(tmp_path / "b.png")
    _png(tmp_path / "a.png")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    got = from_dir(tmp_path, "make it blue")
    assert [Path(i.image).name for i in got if i.image] == ["a.png", "b.png"]
    assert all(i.prompt == "make it blue" and Path(i.image or "").is_absolute() for i in got)


def test_from_dir_skips_what_is_not_an_image_and_says_so(tmp_path: Path) -> None:
    _png(tmp_path / "b.png")
    _png(tmp_path / "a.JPG")
    for name in ("notes.txt", "meta.json", "README", "x.csv"):
        (tmp_path / name).write_text("not an image")
    (tmp_path / "sub").mkdir()  # a folder is not a file: neither read nor counted
    got = from_dir(tmp_path, "p")
    assert [Path(i.image or "").name for i in got] == ["a.JPG", "b.png"]
    # 4 skipped, sorted by name (uppercase first): the first three named, then the count of the rest
    assert skipped_text(tmp_path) == "skipped 4 non-image files: README, meta.json, notes.txt and 1 more"
    for name in ("README", "meta.json", "x.csv"):
        (tmp_path / name).unlink()
    assert skipped_text(tmp_path) == "skipped 1 non-image file: notes.txt"
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # an image by its name stays checked
    with pytest.raises(BenchError, match=r"c\.png is not a readable image"):
        from_dir(tmp_path, "p")


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "non_image", "no_prompt"])
def test_from_dir_errors(tmp_path: Path, case: str) -> None:
    d = tmp_path / "in"
    prompt = "p"
    if case != "missing":
        d.mkdir()
    if case == "corrupt":
        _png(d / "ok.png")
        (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "non_image":  # no image at all: the refusal names what it skipped
        (d / "notes.txt").write_text("hello")
    elif case == "no_prompt":
        _png(d / "ok.png")
        prompt = " "
    with pytest.raises(BenchError) as e:
        from_dir(d, prompt)
    msg = str(e.value)
    assert "\n" not in msg
    if case in ("corrupt", "non_image"):
        assert ("bad.png" if case == "corrupt" else "notes.txt") in msg


def test_tasks_file_jsonl_and_csv(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    _png(tmp_path / "imgs" / "x.png")
    jl = tmp_path / "t.jsonl"
    jl.write_text(json.dumps({"image": "imgs/x.png", "prompt": "a", "seed": 7, "steps": 3}) + "\n\n"
                  + json.dumps({"image": None, "prompt": "b", "size": 256}) + "\n")
    got = from_tasks_file(jl)
    assert got[0] == TaskInput(image=str((tmp_path / "imgs" / "x.png").resolve()), prompt="a", seed=7,
                               steps=3, width=8, height=8)  # the size it was decoded at
    assert got[1] == TaskInput(image=None, prompt="b", size=256)
    csv = tmp_path / "t.csv"
    csv.write_text("image,prompt,seed\nimgs/x.png,hello there,\n,gen,3\n")
    got = from_tasks_file(csv)
    assert [(i.prompt, i.seed, i.image is None) for i in got] == [("hello there", None, False),
                                                                  ("gen", 3, True)]


@pytest.mark.parametrize("content, line", [
    ('{"image": null, "prompt": "ok"}\n{"image": "x.png", "prompt": \n', 2),  # bad JSON
    ('{"image": null, "prompt": "ok"}\n\n{"image": "gone.png", "prompt": "p"}\n', 3),  # missing image
    ('{"image": null, "prompt": ""}\n', 1),  # empty prompt
    ('{"image": null, "prompt": "p", "steps": "many"}\n', 1),  # bad int
    ('{"image": null, "prompt": "p", "colour": 1}\n', 1),  # unknown column
    ('[1, 2]\n', 1),  # not an object
])
def test_tasks_file_errors_name_the_line(tmp_path: Path, content: str, line: int) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(content)
    with pytest.raises(BenchError, match=rf"t\.jsonl:{line}:"):
        from_tasks_file(f)


def test_tasks_file_missing_and_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist"):
        from_tasks_file(tmp_path / "nope.jsonl")
    (tmp_path / "notes.txt").write_text("hi")
    f = tmp_path / "t.csv"
    f.write_text("image,prompt\nnotes.txt,p\n")
    with pytest.raises(BenchError, match=r"t\.csv:2:.*notes\.txt"):
        from_tasks_file(f)
    f.write_text("picture,caption\na,b\n")
    with pytest.raises(BenchError, match=r"t\.csv:1:"):
        from_tasks_file(f)


def test_a_row_keeps_columns_of_its_own_where_the_workload_asks(tmp_path: Path) -> None:
    """Other columns kept as `extra` where the workload asks for them (JSON values as they are, CSV cells as
    strings), with several images as every workload reads them; a missing prompt is "" where not required.
    By default they are refused by name, as they always were."""
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", (0, 0, 255))
    open_ = Columns(extra=True, require_prompt=False)
    jl = tmp_path / "t.jsonl"
    jl.write_text(json.dumps({"image": ["a.png", "b.png"], "prompt": "p", "style": {"k": 1}}) + "\n"
                  + json.dumps({"image": "a.png", "tag": 7}) + "\n")
    two, one = from_tasks_file(jl, open_)
    assert two.image == (str(a.resolve()), str(b.resolve())) and two.extra == {"style": {"k": 1}}
    assert one.image == str(a.resolve()) and one.prompt == "" and one.extra == {"tag": 7}
    csv = tmp_path / "t.csv"
    csv.write_text("image,prompt,style\na.png|b.png,p,ink\n,q,\n")
    two, generated_ = from_tasks_file(csv, open_)
    assert two.image == (str(a.resolve()), str(b.resolve())) and two.extra == {"style": "ink"}
    assert generated_.image is None and generated_.extra == {"style": ""}
    with pytest.raises(BenchError, match=r"t\.csv:2: unknown column\(s\) style"):
        from_tasks_file(csv)
    (tmp_path / "n.csv").write_text("image,style\na.png,ink\n")
    assert from_tasks_file(tmp_path / "n.csv", open_)[0].prompt == ""
    with pytest.raises(BenchError, match=r"n\.csv:1: CSV header must have columns image, prompt"):
        from_tasks_file(tmp_path / "n.csv", Columns(extra=True))


def test_open_image_vanished(tmp_path: Path) -> None:
    p = _png(tmp_path / "a.png")
    assert open_image(str(p)).mode == "RGB"
    p.unlink()
    with pytest.raises(BenchError, match=r"a\.png"):
        open_image(str(p))


def test_generated_inputs_and_images_are_deterministic() -> None:
    g = generated()
    assert len(g) == len(EDIT_PROMPTS) and all(i.image is None for i in g)
    assert generated(3) == g[:3]
    a, b, c = generated_image(5, 64), generated_image(5, 64), generated_image(6, 64)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


def test_inputs_module_does_not_import_torch() -> None:
    code = "import sys, bench.inputs; print('torch' in sys.modules or 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
