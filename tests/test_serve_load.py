"""scripts/serve_load.py, the load generator the benchmark calls: a short run against a live
server counts every answer, and it refuses to send anywhere but this machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("starlette", reason="nmt serve's tests need the serve extra: "
                    "pip install 'nmt[serve]'")

import torch  # noqa: E402
from conftest import load_script  # noqa: E402
from serve_support import build_run, live_server  # noqa: E402

from nmt.serve.app import create_app  # noqa: E402
from nmt.serve.settings import ServeSettings  # noqa: E402
from nmt.translate import Translator  # noqa: E402

serve_load = load_script("serve_load")


@pytest.fixture(scope="module")
def translator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Translator]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = build_run(tmp_path_factory.getbasetemp() / "translate-runs", "transformer")
    yield Translator.load(run, device="cpu")
    torch.set_num_threads(before)


def test_measure_counts_every_answer(translator: Translator) -> None:
    app = create_app(translator, ServeSettings(api_key="k"))
    with live_server(app) as url:
        result = serve_load.measure(url, ["我喜欢茶。", "他很高兴。"], clients=6, requests=30,
                                    options={"strategy": "greedy"}, api_key="k", warmup=6)
        refused = serve_load.measure(url, ["我"], clients=2, requests=4)  # no key: 403s
    assert result["requests"] == 30 and result["errors"] == 0 and result["clients"] == 6
    assert result["sentences_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert refused["requests"] == 4 and refused["errors"] == 4
    metrics = app.state.service.metrics
    sentences = metrics.registry.get_sample_value("nmt_sentences_total",
                                                  {"endpoint": "/v1/translate"})
    assert sentences == 36  # the warm-up included


@pytest.mark.parametrize("url", ["http://10.0.0.1:5000", "http://example.com",
                                 "https://127.0.0.1:5000"])
def test_measure_only_loads_this_machine(url: str) -> None:
    with pytest.raises(ValueError):
        serve_load.measure(url, ["a"], clients=1, requests=1)


def test_measure_is_bounded() -> None:
    with pytest.raises(ValueError, match="clients"):
        serve_load.measure("http://127.0.0.1:1", ["a"], clients=5000, requests=1)
    with pytest.raises(ValueError, match="requests"):
        serve_load.measure("http://127.0.0.1:1", ["a"], clients=1, requests=10**7)
