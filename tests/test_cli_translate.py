"""`nmt translate` through CliRunner: inputs, outputs, formats, errors, both model types."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_translate import MODEL_TYPES, SPECIALS, build_run
from typer.testing import CliRunner, Result

from nmt.cli import app
from nmt.models.int8 import int8_available

# Tiny models gain nothing from threads (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session", params=MODEL_TYPES)
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.getbasetemp() / "translate-runs", request.param)


def translate(run_dir: Path, *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(app, ["translate", "--model", str(run_dir), "--device", "cpu",
                                    *args], input=input)


def ok_lines(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.split("\n")[:-1] if result.stdout else []


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), result.stderr
    return lines[0]


def test_text_arguments(run_dir: Path) -> None:
    lines = ok_lines(translate(run_dir, "我喜欢茶。", "", "你好", "--strategy", "greedy"))
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]


def test_stdin_keeps_every_line_in_order(run_dir: Path) -> None:
    sources = ["我喜欢茶。", "", "Tom住在New York，喝🍵 3点半", "\x07", "他很高兴。", ""]
    piped = ok_lines(translate(run_dir, "--strategy", "beam", input="\n".join(sources) + "\n"))
    assert len(piped) == len(sources)
    assert [i for i, t in enumerate(piped) if not t] == [1, 3, 5]
    args = ok_lines(translate(run_dir, "--strategy", "beam", *sources))
    assert piped == args  # one processing path, whatever the input route
    assert not any(s in line for line in piped for s in SPECIALS)


def test_input_file_and_output_file(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes("\ufeff我喜欢茶。\r\n\r\n你好\u2028世界\n".encode())  # BOM, CRLF, U+2028
    out = tmp_path / "out" / "hyp.txt"
    result = translate(run_dir, "--input", str(src), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    written = out.read_text(encoding="utf-8").split("\n")
    assert len(written) == 4 and written[3] == "" and written[1] == ""
    assert ok_lines(translate(run_dir, "--input", "-", input=src.read_bytes())) == written[:3]


# Lines as they come from the wild: anything but "\n" (the only line break the input files
# have), with the characters str.splitlines() or text mode would also break on, controls,
# blanks, and no surrogates (not encodable as UTF-8).
_ODD = "\r\x85\u2028\u2029\x0b\x0c\x1c\x00\x07\x1b\ufeff \t我a"
_LINES = st.lists(st.one_of(
    st.just(""),
    st.text(st.characters(exclude_characters="\n", exclude_categories=["Cs"]), max_size=12),
    st.text(_ODD, max_size=6),
), max_size=6)  # fmt: skip


@settings(max_examples=20, deadline=None)
@given(lines=_LINES)
def test_random_unicode_file_gives_one_output_line_per_input_line(
    run_dir: Path, lines: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.txt"
        src.write_bytes("".join(line + "\n" for line in lines).encode())
        out = ok_lines(translate(run_dir, "-i", str(src), "--strategy", "greedy"))
    assert len(out) == len(lines)


def test_jsonl_nbest(run_dir: Path) -> None:
    lines = ok_lines(translate(run_dir, "你好", "我喜欢茶。", "--format", "jsonl",
                               "--strategy", "beam", "--beam-size", "4", "--n-best", "3"))
    assert len(lines) == 2
    for line in lines:
        obj = json.loads(line)
        assert set(obj) >= {"source", "translation", "score", "norm_score", "nbest",
                            "src_tokens", "tokens"}
        assert len(obj["nbest"]) == 3
        norms = [e["norm_score"] for e in obj["nbest"]]
        assert norms == sorted(norms, reverse=True)
        assert obj["nbest"][0]["translation"] == obj["translation"]
        assert obj["nbest"][0]["tokens"] == obj["tokens"]
    # Text mode prints the best only: still one line per input.
    assert len(ok_lines(translate(run_dir, "你好", "--n-best", "3", "--beam-size", "4"))) == 1


def test_sampling_seed(run_dir: Path) -> None:
    args = ["--strategy", "sample", "--temperature", "2", "--top-k", "50", "--top-p", "0.95"]
    text = "\n".join(["你好", "我喜欢茶。", "汤姆在哪里？", "他很高兴。"]) + "\n"
    first = ok_lines(translate(run_dir, *args, "--seed", "3", input=text))
    assert ok_lines(translate(run_dir, *args, "--seed", "3", input=text)) == first


def test_long_line_warning(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nmt.translate"):
        lines = ok_lines(translate(run_dir, input="你好\n" + "我喜欢茶" * 10 + "\n"))
    assert len(lines) == 2 and lines[1]
    assert "line 2" in caplog.text and "truncated" in caplog.text


def test_invalid_utf8(run_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes("你好\n".encode() + b"ab\xffcd\n")
    result = translate(run_dir, "--input", str(bad))
    assert result.exit_code == 3
    assert f"{bad}:2: invalid UTF-8" in one_error_line(result)
    assert "<stdin>:2" in one_error_line(translate(run_dir, input=bad.read_bytes()))
    assert len(ok_lines(translate(run_dir, "--input", str(bad), "--errors", "replace"))) == 2


def test_errors_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    missing = translate(tmp_path / "nope", "你好")
    assert missing.exit_code == 4 and "no such run directory" in one_error_line(missing)
    bad_option = translate(run_dir, "你好", "--top-p", "1.5")
    assert bad_option.exit_code == 2 and "top_p" in one_error_line(bad_option)
    bad_format = translate(run_dir, "你好", "--format", "xml")
    assert bad_format.exit_code == 2 and "--format" in one_error_line(bad_format)
    both = translate(run_dir, "你好", "--input", str(tmp_path / "x"))
    assert both.exit_code == 2 and "not both" in one_error_line(both)


@pytest.mark.skipif(not int8_available(), reason="this PyTorch build has no FBGEMM int8 kernels")
def test_int8_precision(run_dir: Path) -> None:
    sources = ["我喜欢茶。", "", "他很高兴。"]
    lines = ok_lines(translate(run_dir, "--precision", "int8", "--strategy", "beam", *sources))
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]
    bad = translate(run_dir, "你好", "--precision", "int4")
    assert bad.exit_code == 2
    assert "precision: expected one of auto, fp32, bf16, fp16, int8" in one_error_line(bad)


def test_plot_attention(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    lines = ok_lines(translate(run_dir, "我喜欢茶。", "", "Tom住在纽约", "--plot-attention",
                               str(plots), "--strategy", "greedy"))
    assert len(lines) == 3
    assert sorted(p.name for p in plots.iterdir()) == ["0001.png", "0003.png"]
    assert (plots / "0001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_documents_every_option() -> None:
    result = CliRunner().invoke(app, ["translate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--model", "--input", "--output", "--strategy", "--beam-size", "--n-best",
                   "--length-penalty", "--temperature", "--top-k", "--top-p", "--seed",
                   "--max-len-a", "--max-len-b", "--batch-size", "--device", "--replace-unk",
                   "--format", "--plot-attention", "--checkpoint", "--errors", "--precision"):
        assert option in result.stdout, option


def test_evaluate_model_mode_uses_the_translator(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "src.txt").write_text("我喜欢茶。\n你好\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("I like tea.\nHello.\n", encoding="utf-8")
    result = CliRunner().invoke(app, [
        "evaluate", "--model", str(run_dir), "--src", str(tmp_path / "src.txt"),
        "--ref", str(tmp_path / "ref.txt"), "--device", "cpu", "--strategy", "greedy",
        "--save-hyp", str(tmp_path / "hyp.txt"),
    ])
    assert result.exit_code == 0, result.output
    assert "decoding: 2 sentences" in result.stdout
    hyps = (tmp_path / "hyp.txt").read_text(encoding="utf-8").splitlines()
    assert hyps == ok_lines(translate(run_dir, "我喜欢茶。", "你好", "--strategy", "greedy"))


# --------------------------------------------------------------------------- steering


def test_prefix_starts_every_translation(run_dir: Path) -> None:
    lines = ok_lines(translate(run_dir, "我喜欢茶。", "你好", "--prefix", "Tom", "--strategy",
                               "beam"))  # fmt: skip
    assert len(lines) == 2 and all(line.startswith("Tom") for line in lines)


def test_jsonl_input_gives_each_line_its_prefix(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"source": "我喜欢茶。", "prefix": "Zebra"}\n\n{"source": "你好"}\n',
                   encoding="utf-8")  # fmt: skip
    lines = ok_lines(translate(run_dir, "--input", str(src), "--input-format", "jsonl",
                               "--strategy", "greedy"))  # fmt: skip
    assert len(lines) == 3 and lines[0].startswith("Zebra") and lines[1] == ""
    # An out-of-vocabulary prefix word is written as given, not as <unk>.
    assert "<unk>" not in lines[0]
    plain = ok_lines(translate(run_dir, "你好", "--strategy", "greedy"))
    assert lines[2] == plain[0]


def test_jsonl_input_errors_name_the_line(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"source": "你好"}\n{"text": "no source"}\n', encoding="utf-8")
    result = translate(run_dir, "--input", str(src), "--input-format", "jsonl")
    assert result.exit_code == 3 and f"{src}:2: expected an object" in one_error_line(result)
    src.write_text("not json\n", encoding="utf-8")
    result = translate(run_dir, "--input", str(src), "--input-format", "jsonl")
    assert result.exit_code == 3 and f"{src}:1: not JSON" in one_error_line(result)


def test_steering_options_reach_the_search(run_dir: Path) -> None:
    base = ok_lines(translate(run_dir, "我喜欢茶。", "--strategy", "greedy", "--format", "jsonl"))
    first = json.loads(base[0])["tokens"][0]
    banned = ok_lines(translate(run_dir, "我喜欢茶。", "--strategy", "greedy", "--format",
                                "jsonl", "--ban", first))  # fmt: skip
    assert first not in json.loads(banned[0])["tokens"]
    long = ok_lines(translate(run_dir, "你好", "--strategy", "greedy", "--min-length", "5",
                              "--max-len-b", "10", "--format", "jsonl"))  # the limit wins
    assert len(json.loads(long[0])["tokens"]) >= 5
    no_repeat = ok_lines(translate(run_dir, "我喜欢茶。" * 3, "--strategy", "beam",
                                   "--no-repeat-ngram-size", "1", "--format", "jsonl"))
    tokens = json.loads(no_repeat[0])["tokens"]
    assert len(tokens) == len(set(tokens))
    bad = translate(run_dir, "你好", "--repetition-penalty", "0")
    assert bad.exit_code == 2 and "decode.repetition_penalty" in one_error_line(bad)


def test_decoding_options_are_declared_once() -> None:
    from nmt.cli.decoding import OPTION_KEYS

    for command, missing in (("translate", set()), ("evaluate", {"n_best"}),
                             ("tune", {"strategy", "n_best", "length_penalty", "temperature",
                                       "top_k", "top_p"})):  # fmt: skip
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for key in OPTION_KEYS:
            if command == "tune" and key == "length_penalty":
                continue  # tune's own --length-penalty is the list of candidates
            flag = "--ban" if key == "banned_words" else "--" + key.replace("_", "-")
            assert (flag in result.stdout) == (key not in missing), (command, flag)


def test_glossary_terms_appear_in_the_output(run_dir: Path, tmp_path: Path) -> None:
    glossary = tmp_path / "g.tsv"
    glossary.write_text("茶\ttea\n纽约\tYork\n猫\tQwxyzzz\n", encoding="utf-8")
    sources = ["我喜欢茶。", "他很高兴。", "Tom住在纽约"]
    lines = ok_lines(translate(run_dir, *sources, "--glossary", str(glossary), "--strategy",
                               "beam", "--max-len-b", "8"))  # fmt: skip
    assert "tea" in lines[0].split() or "tea" in lines[0]
    assert "York" in lines[2]
    plain = ok_lines(translate(run_dir, "他很高兴。", "--strategy", "beam", "--max-len-b", "8"))
    assert lines[1] == plain[0]  # no term in it: as without a glossary
    greedy = translate(run_dir, "我喜欢茶。", "--glossary", str(glossary), "--strategy", "greedy")
    assert greedy.exit_code == 2 and "need beam search" in one_error_line(greedy)
    glossary.write_text("茶 tea\n", encoding="utf-8")
    bad = translate(run_dir, "我喜欢茶。", "--glossary", str(glossary))
    assert bad.exit_code == 3 and f"{glossary}:1: expected" in one_error_line(bad)
    glossary.write_text("猫\tcat\n茶\t" + "a " * 70 + "\n", encoding="utf-8")
    long = translate(run_dir, "我喜欢茶。", "--glossary", str(glossary))
    if run_dir.name == "transformer":  # 70 tokens: more than its 64 positions
        assert long.exit_code == 2
        assert f"{glossary}:2: target term of 70 tokens" in one_error_line(long)
    else:  # the GRU has no position limit: the length limit makes room for the term
        assert ("a " * 70).strip() in ok_lines(long)[0]


def test_evaluate_reports_the_term_usage_rate(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "src.txt").write_text("我喜欢茶。\n你好\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("I like tea.\nHello.\n", encoding="utf-8")
    (tmp_path / "g.tsv").write_text("茶\ttea\n你好\tHi\n", encoding="utf-8")
    args = ["evaluate", "--hyp", str(tmp_path / "hyp.txt"), "--ref", str(tmp_path / "hyp.txt"),
            "--src", str(tmp_path / "src.txt"), "--glossary", str(tmp_path / "g.tsv")]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["term_usage"] == {"used": 1, "occurring": 2, "rate": 50.0}
    no_src = CliRunner().invoke(app, [a for a in args if a != "--src" and
                                      not a.endswith("src.txt")])  # fmt: skip
    assert no_src.exit_code == 2 and "needs the sources" in one_error_line(no_src)
    (tmp_path / "tea.tsv").write_text("茶\ttea\n", encoding="utf-8")
    constrained = CliRunner().invoke(app, [
        "evaluate", "--model", str(run_dir), "--src", str(tmp_path / "src.txt"), "--ref",
        str(tmp_path / "hyp.txt"), "--device", "cpu", "--glossary", str(tmp_path / "tea.tsv"),
        "--strategy", "beam", "--max-len-b", "8", "--json"])
    assert constrained.exit_code == 0, constrained.output
    usage = json.loads(constrained.stdout)["term_usage"]
    assert usage == {"used": 1, "occurring": 1, "rate": 100.0}  # the random model says "tea"
    # --no-constrain: the model's own output, scored as --hyp scores it
    free = CliRunner().invoke(app, [
        "evaluate", "--model", str(run_dir), "--src", str(tmp_path / "src.txt"), "--ref",
        str(tmp_path / "hyp.txt"), "--device", "cpu", "--glossary", str(tmp_path / "g.tsv"),
        "--no-constrain", "--strategy", "beam", "--max-len-b", "8", "--json",
        "--save-hyp", str(tmp_path / "free.txt")])
    assert free.exit_code == 0, free.output
    plain = ok_lines(translate(run_dir, "我喜欢茶。", "你好", "--strategy", "beam",
                               "--max-len-b", "8"))  # fmt: skip
    assert (tmp_path / "free.txt").read_text(encoding="utf-8").splitlines() == plain
    scored = CliRunner().invoke(app, [
        "evaluate", "--hyp", str(tmp_path / "free.txt"), "--ref", str(tmp_path / "hyp.txt"),
        "--src", str(tmp_path / "src.txt"), "--glossary", str(tmp_path / "g.tsv"), "--json"])
    assert scored.exit_code == 0, scored.output
    used = sum(term in line for term, line in zip(["tea", "Hi"], plain, strict=True))
    assert json.loads(free.stdout)["term_usage"]["used"] == used
    assert json.loads(scored.stdout)["term_usage"] == json.loads(free.stdout)["term_usage"]
