"""`nmt serve` as a command and a process: one-line errors (no extra, a bad setting, a taken
port), and SIGTERM while requests are queued: every request is answered, the exit code is 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmt.cli import app

REPO = Path(__file__).resolve().parents[1]


def one_error_line(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), result.stderr
    return result.exit_code, lines[0]


def test_without_the_serve_extra_one_line_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("starlette", "uvicorn"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    code, line = one_error_line(["serve", "--model", str(tmp_path)])
    assert code == 1
    assert line == "nmt: error: nmt serve needs starlette, uvicorn: pip install 'nmt[serve]'"


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="pip install 'nmt[serve]'")
    code, line = one_error_line(["serve", "--model", str(tmp_path), "--max-batch", "0"])
    assert (code, line) == (2, "nmt: error: --max-batch: must be >= 1")
    code, line = one_error_line(["serve", "--model", str(tmp_path), "--max-sentences", "9",
                                 "--max-queue", "8"])
    assert "--max-queue: must be >= --max-sentences (9)" in line
    code, line = one_error_line(["serve", "--model", str(tmp_path), "--workers", "-1"])
    assert (code, line) == (2, "nmt: error: --workers: must be >= 0 (0 = one per core on a CPU)")


def test_a_taken_port_is_one_line_before_the_model_loads(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="pip install 'nmt[serve]'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, line = one_error_line(["serve", "--model", str(tmp_path / "none"),
                                     "--port", str(port)])
    assert code == 1
    assert line == f"nmt: error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_sigterm_answers_every_queued_request_and_exits_0(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="pip install 'nmt[serve]'")
    httpx = pytest.importorskip("httpx", reason="the dev extra")
    from serve_support import build_run, free_port

    run = build_run(tmp_path_factory.getbasetemp() / "translate-runs", "transformer")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    # One sentence per batch, long beam searches: requests pile up in the queue.
    command = [sys.executable, "-m", "nmt", "serve", "--model", str(run), "--port", str(port),
               "--device", "cpu", "--max-batch", "1", "--strategy", "beam", "--beam-size", "8",
               "--max-len-a", "0", "--max-len-b", "60"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with log.open("w") as stderr:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=stderr)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        sentences = [f"我有{i}只猫和{i + 1}只狗。" for i in range(12)]

        def ask(sentence: str) -> httpx.Response:
            return httpx.post(f"{url}/v1/translate", json={"sentences": [sentence]}, timeout=60)

        with ThreadPoolExecutor(len(sentences)) as pool:
            answers = [pool.submit(ask, s) for s in sentences]
            deadline = time.monotonic() + 60
            # Every request in the server (answered, decoding or queued) before the signal: a
            # connection whose request has not been read yet is not the server's to answer.
            while received(httpx.get(f"{url}/metrics", timeout=5).text) < len(sentences) \
                    or queued(httpx.get(f"{url}/metrics", timeout=5).text) < 3:  # fmt: skip
                assert time.monotonic() < deadline, "the requests never queued up"
                time.sleep(0.01)
            server.send_signal(signal.SIGTERM)
            responses = [a.result() for a in answers]
        assert [r.status_code for r in responses] == [200] * len(sentences), \
            [r.text for r in responses]  # fmt: skip
        assert [r.json()["translations"][0]["source"] for r in responses] == sentences
        assert server.wait(timeout=60) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def received(metrics: str) -> float:
    """Translation requests the server has: answered, queued, or the one decoding (one
    decoder, one sentence per batch)."""
    answered = sum(float(v) for v in re.findall(
        r'^nmt_requests_total\{endpoint="/v1/translate"[^}]*\} (\S+)$', metrics, re.MULTILINE))
    return answered + queued(metrics) + 1


def queued(metrics: str) -> float:
    match = re.search(r"^nmt_queue_sentences (\S+)$", metrics, re.MULTILINE)
    assert match, metrics
    return float(match[1])
