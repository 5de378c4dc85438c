"""`nmt evaluate` against the sacrebleu command line, plus its error paths.

The agreement tests run ``.venv/bin/sacrebleu`` as a subprocess on the same files and compare
what both tools print, digit for digit, together with the signatures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nmt import evaluate as ev
from nmt.cli import app
from nmt.errors import ConfigError, DataError

SACREBLEU = shutil.which("sacrebleu", path=str(Path(sys.executable).parent)) or shutil.which(
    "sacrebleu"
)
needs_sacrebleu_cli = pytest.mark.skipif(SACREBLEU is None, reason="sacrebleu CLI not found")

EN_REF = [
    "The cat sat on the mat.",
    "It is raining heavily today!",
    "I like green tea very much.",
    "Where is the nearest train station?",
    "She has been learning Chinese for three years.",
    "We will meet again tomorrow morning.",
    "Please close the window before you leave.",
    "He doesn't know how to swim.",
]
EN_REF2 = [
    "A cat was sitting on the mat.",
    "Today it is raining a lot!",
    "I really like green tea.",
    "Where's the closest railway station?",
    "She's studied Chinese for three years.",
    "We'll see each other again tomorrow morning.",
    "Close the window before leaving, please.",
    "He can't swim.",
]
EN_HYP = [
    "The cat is sitting on the mat.",
    "It rains a lot today.",
    "I like green tea a lot.",
    "Where is the closest train station?",
    "She learns Chinese for three years.",
    "We meet again tomorrow morning.",
    "Please close the window before leaving.",
    "He does not know swimming.",
]
EN_HYP2 = [
    "The cat sat on the mat.",
    "It is raining today.",
    "I like tea very much.",
    "Where is the nearest station?",
    "She has learned Chinese for three years.",
    "We will meet tomorrow.",
    "Close the window before you leave.",
    "He doesn't know how to swim.",
]
ZH_REF = [
    "我每天早上喝一杯茶。",
    "他明天要去北京。",
    "这本书很有意思。",
    "请把窗户关上。",
    "我们下午三点见面吧。",
    "她会说三种语言。",
]
ZH_REF2 = [
    "我每天早晨都喝杯茶。",
    "他明天去北京。",
    "这本书挺有趣的。",
    "请关窗。",
    "下午三点我们见面。",
    "她能讲三门语言。",
]
ZH_HYP = [
    "我每天早上喝茶。",
    "明天他要去北京。",
    "这本书很有趣。",
    "请关上窗户。",
    "我们三点见面。",
    "她说三种语言。",
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def nmt(*args: str) -> Any:
    return CliRunner().invoke(app, ["evaluate", *args])


def sacrebleu_json(*args: str) -> list[dict[str, Any]]:
    assert SACREBLEU is not None
    proc = subprocess.run(
        [SACREBLEU, *args, "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    out = json.loads(proc.stdout)
    return out if isinstance(out, list) else [out]


# --------------------------------------------------------------------------- agreement
@needs_sacrebleu_cli
@pytest.mark.parametrize(
    ("lang", "refs", "width"),
    [
        ("en", [EN_REF], 1),
        ("en", [EN_REF, EN_REF2], 1),
        ("en", [EN_REF, EN_REF2], 4),
        ("zh", [ZH_REF], 1),
        ("zh", [ZH_REF, ZH_REF2], 1),
    ],
)
def test_agrees_with_sacrebleu_cli(
    tmp_path: Path, lang: str, refs: list[list[str]], width: int
) -> None:
    hyp = write(tmp_path / "hyp.txt", EN_HYP if lang == "en" else ZH_HYP)
    ref_files = [str(write(tmp_path / f"ref{k}.txt", r)) for k, r in enumerate(refs)]
    extra = ["-tok", "zh", "--ter-normalized", "--ter-asian-support"] if lang == "zh" else []
    expected = sacrebleu_json(
        *ref_files, "-i", str(hyp), "-m", "bleu", "chrf", "ter", "-w", str(width), *extra
    )

    ref_args = [a for f in ref_files for a in ("--ref", f)]
    common = ["--hyp", str(hyp), *ref_args, "--tgt-lang", lang, "--width", str(width)]
    as_json = nmt(*common, "--json")
    assert as_json.exit_code == 0, as_json.output
    got = json.loads(as_json.stdout)["metrics"]
    assert [(m["name"], m["score"], m["signature"]) for m in got] == [
        (m["name"], m["score"], m["signature"]) for m in expected
    ]

    # The table prints each score with exactly the digits sacrebleu prints.
    table = nmt(*common)
    assert table.exit_code == 0, table.output
    printed = {line.split()[0]: line.split()[1] for line in table.stdout.splitlines()[1:4]}
    for m in expected:
        assert printed[m["name"]] == f"{m['score']:.{width}f}"
    assert f"{expected[0]['verbose_score']}" in table.stdout  # BLEU n-gram details too


@needs_sacrebleu_cli
def test_compare_agrees_with_sacrebleu_paired_bs(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.txt", EN_REF)
    base = write(tmp_path / "base.txt", EN_HYP)
    other = write(tmp_path / "other.txt", EN_HYP2)
    assert SACREBLEU is not None
    # sacrebleu's paired JSON output is broken in 2.x (numpy floats), so read its text table.
    proc = subprocess.run(
        [
            SACREBLEU,
            str(ref),
            "-i",
            str(base),
            str(other),
            "-m",
            "bleu",
            "chrf",
            "ter",
            "--paired-bs",
            "--paired-bs-n",
            "50",
            "-f",
            "text",
            "-q",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin"},
    )
    cells = re.findall(r"(\d+\.\d) \((\d+\.\d) ± (\d+\.\d)\)", proc.stdout)
    p_values = re.findall(r"p = (\d\.\d{4})", proc.stdout)

    result = nmt(
        "--hyp",
        str(base),
        "--ref",
        str(ref),
        "--compare",
        str(other),
        "--bootstrap",
        "50",
        "--json",
    )
    assert result.exit_code == 0, result.output
    systems = json.loads(result.stdout)["systems"]
    ours = [
        (f"{s['score']:.1f}", f"{s['mean']:.1f}", f"{s['ci']:.1f}")
        for system in systems
        for s in system["scores"].values()
    ]
    assert ours == cells
    assert [f"{s['p_value']:.4f}" for s in systems[1]["scores"].values()] == p_values


# --------------------------------------------------------------------------- compare
def test_compare_reports_p_value_and_marks_significance(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.txt", EN_REF)
    bad = write(tmp_path / "bad.txt", [s.split()[0] + " ." for s in EN_REF])
    perfect = write(tmp_path / "perfect.txt", EN_REF)
    same = write(tmp_path / "same.txt", [s.split()[0] + " ." for s in EN_REF])
    args = [
        "--hyp",
        str(bad),
        "--ref",
        str(ref),
        "--compare",
        str(perfect),
        "--compare",
        str(same),
        "--bootstrap",
        "100",
        "--metrics",
        "bleu,chrf",
    ]

    data = json.loads(nmt(*args, "--json").stdout)
    base, better, identical = data["systems"]
    assert base["baseline"] and base["scores"]["BLEU"]["p_value"] is None
    assert better["scores"]["BLEU"]["p_value"] < 0.05 and better["scores"]["BLEU"]["significant"]
    assert identical["scores"]["BLEU"]["p_value"] == 1.0
    assert not identical["scores"]["chrF2"]["significant"]
    assert "bs:100" in data["signatures"]["BLEU"]

    table = nmt(*args)
    assert table.exit_code == 0
    row = next(
        line
        for line in table.stdout.splitlines()
        if line.startswith(str(perfect)) and "BLEU" in line
    )
    assert re.search(r"0\.0\d{3}\*$", row), row
    assert "* p < 0.05" in table.stdout


# --------------------------------------------------------------------------- errors
def one_error_line(result: Any) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nmt: error: ")
    return lines[0]


def test_line_count_mismatch_is_one_error_line(tmp_path: Path) -> None:
    hyp = write(tmp_path / "hyp.txt", EN_HYP)
    ref = write(tmp_path / "ref.txt", EN_REF[:-1])
    result = nmt("--hyp", str(hyp), "--ref", str(ref))
    line = one_error_line(result)
    assert result.exit_code == DataError.exit_code
    assert str(hyp) in line and str(ref) in line and "8" in line and "7" in line
    assert result.stdout == ""


def test_mismatch_in_second_reference_or_compared_system(tmp_path: Path) -> None:
    hyp = write(tmp_path / "hyp.txt", EN_HYP)
    ref = write(tmp_path / "ref.txt", EN_REF)
    short = write(tmp_path / "short.txt", EN_REF[:3])
    line = one_error_line(nmt("--hyp", str(hyp), "--ref", str(ref), "--ref", str(short)))
    assert str(short) in line and " 3" in line
    line = one_error_line(nmt("--hyp", str(hyp), "--ref", str(ref), "--compare", str(short)))
    assert str(short) in line


def test_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.txt", EN_REF)
    missing = tmp_path / "nope.txt"
    for args in (
        ["--hyp", str(missing), "--ref", str(ref)],
        ["--hyp", str(ref), "--ref", str(missing)],
    ):
        result = nmt(*args)
        assert str(missing) in one_error_line(result)
        assert result.exit_code == DataError.exit_code


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.txt", EN_REF)
    for args in (
        ["--hyp", str(ref), "--ref", str(ref), "--metrics", "bleu,meteor"],
        ["--hyp", str(ref), "--ref", str(ref), "--tokenize", "moses"],
        ["--hyp", str(ref)],
        ["--ref", str(ref)],
        ["--hyp", str(ref), "--ref", str(ref), "--model", str(tmp_path)],
    ):
        result = nmt(*args)
        one_error_line(result)
        assert result.exit_code == ConfigError.exit_code, args


# --------------------------------------------------------------------------- library
def test_default_tokenize_and_metric_parsing() -> None:
    assert ev.default_tokenize("zh") == "zh" and ev.default_tokenize("en") == "13a"
    assert ev.parse_metrics(" TER, bleu,ter") == ("ter", "bleu")
    with pytest.raises(ConfigError):
        ev.parse_metrics(",")


def test_score_library_checks_alignment_and_reports_signatures() -> None:
    scores = ev.score(ZH_HYP, [ZH_REF], tokenize="zh")
    assert "tok:zh" in scores["bleu"].signature and "asian:yes" in scores["ter"].signature
    assert ev.score(EN_REF, [EN_REF], tokenize="13a")["bleu"].score == pytest.approx(100.0)
    with pytest.raises(DataError, match="line counts differ"):
        ev.score(EN_HYP, [EN_REF[:2]], tokenize="13a")


def test_chinese_ter_counts_characters_and_english_ter_words() -> None:
    # One wrong character of ten, no spaces: 10 edits per 100 characters, not one wrong "word".
    scores = ev.score(["我今天去商店买了苹果"], [["我昨天去商店买了苹果"]], tokenize="zh")
    assert scores["ter"].score == pytest.approx(10.0)
    assert "norm:yes" in scores["ter"].signature and "asian:yes" in scores["ter"].signature
    # English keeps sacrebleu's default TER: one wrong word of five.
    english = ev.score(["the cat sat on mats"], [["the cat sat on mat"]], tokenize="13a")
    assert english["ter"].score == pytest.approx(20.0)
    assert "norm:no" in english["ter"].signature and "asian:no" in english["ter"].signature


def test_compare_scores_chinese_ter_on_characters() -> None:
    result = ev.compare(ZH_HYP, {"ref": ZH_REF}, [ZH_REF], "zh", ("ter",), n_samples=10)
    assert "asian:yes" in result.signatures["TER"] and "norm:yes" in result.signatures["TER"]
    base_ter = result.systems[0].scores[0].score
    assert 0.0 < base_ter < 50.0  # a few characters per sentence differ, not whole sentences


def test_trailing_whitespace_and_crlf_are_ignored_like_sacrebleu(tmp_path: Path) -> None:
    (tmp_path / "hyp.txt").write_bytes("".join(f"{s}  \r\n" for s in EN_HYP).encode())
    clean = ev.score(EN_HYP, [EN_REF], "13a")
    messy = ev.score(ev.read_texts(tmp_path / "hyp.txt"), [EN_REF], "13a")
    assert [s.score for s in messy.scores] == [s.score for s in clean.scores]


# --------------------------------------------------------------------------- --model mode
def make_run(tmp_path: Path) -> Path:
    from nmt.config import Config, dump_config, replace

    cfg = Config()
    cfg = replace(cfg, data=replace(cfg.data, src_lang="en", tgt_lang="zh"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    return run


class FakeTranslator:
    """Looks up a fixed translation per source line; records the decode options it got."""

    table = dict(zip(EN_REF, ZH_HYP, strict=False))
    calls: list[dict[str, Any]] = []

    def __init__(self, precision: str | None = None) -> None:
        self.precision = precision or "fp32"
        self.processor = types.SimpleNamespace(prepare_src=str)  # how sources are read

    @classmethod
    def load(
        cls, run_dir: Path, device: str = "auto", checkpoint: str = "best",
        precision: str | None = None, to: str | None = None,
    ) -> FakeTranslator:
        return cls(precision)

    def translate(self, sentences: list[str], **options: Any) -> list[str]:
        self.calls.append(options)
        return [self.table[s] for s in sentences]


def test_model_mode_translates_scores_and_reports_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("nmt.translate")
    fake.Translator = FakeTranslator  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nmt.translate", fake)
    run = make_run(tmp_path)
    src = write(tmp_path / "src.en", EN_REF[:6])
    ref = write(tmp_path / "ref.zh", ZH_REF)
    saved = tmp_path / "out.zh"

    result = nmt(
        "--model",
        str(run),
        "--src",
        str(src),
        "--ref",
        str(ref),
        "--beam-size",
        "3",
        "--save-hyp",
        str(saved),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    direct = ev.score(ZH_HYP, [ZH_REF], "zh")  # target language zh comes from the run config
    assert [m["score"] for m in data["metrics"]] == [round(s.score, 1) for s in direct.scores]
    assert "tok:zh" in data["metrics"][0]["signature"]
    decoding = data["decoding"]
    assert decoding["sentences"] == 6 and decoding["target_tokens"] > 0
    assert decoding["sentences_per_second"] > 0 and decoding["tokens_per_second"] > 0
    assert decoding["settings"]["beam_size"] == 3 and "strategy" in decoding["settings"]
    assert FakeTranslator.calls[-1] == {"beam_size": 3}
    assert saved.read_text(encoding="utf-8").splitlines() == ZH_HYP

    table = nmt("--model", str(run), "--src", str(src), "--ref", str(ref))
    assert "sentences/s" in table.stdout and "target tokens/s" in table.stdout
    assert decoding["settings"]["precision"] == "fp32"  # the run's (tests pin CPUs to fp32)
    forced = nmt("--model", str(run), "--src", str(src), "--ref", str(ref), "--precision", "bf16",
                 "--json")  # fmt: skip
    assert json.loads(forced.stdout)["decoding"]["settings"]["precision"] == "bf16"


def test_model_mode_without_translate_module_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nmt.translate", None)  # makes the import fail
    run = make_run(tmp_path)
    src = write(tmp_path / "src.en", EN_REF[:6])
    ref = write(tmp_path / "ref.zh", ZH_REF)
    line = one_error_line(nmt("--model", str(run), "--src", str(src), "--ref", str(ref)))
    assert "nmt.translate" in line
