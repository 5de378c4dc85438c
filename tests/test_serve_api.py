"""`nmt serve`'s native API, health, metrics, the page's files, limits and errors, the API
key, a failing batch and many clients at once, on a tiny random Transformer (its output is
garbage, but deterministic: the server must answer what the offline Translator does)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="nmt serve's tests need the serve extra: "
                    "pip install 'nmt[serve]'")
pytest.importorskip("prometheus_client", reason="pip install 'nmt[serve]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the dev extra)")

import httpx  # noqa: E402
import torch  # noqa: E402
from serve_support import build_run, live_server  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from nmt.errors import ConfigError  # noqa: E402
from nmt.serve.app import create_app  # noqa: E402
from nmt.serve.settings import ServeSettings  # noqa: E402
from nmt.translate import Translator  # noqa: E402

SENTENCES = ["我喜欢茶。", "", "汤姆在哪里？", "他很高兴。"]


# Tiny models gain nothing from threads (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def translator(tmp_path_factory: pytest.TempPathFactory) -> Translator:
    run = build_run(tmp_path_factory.getbasetemp() / "translate-runs", "transformer")
    return Translator.load(run, device="cpu")


@pytest.fixture(scope="module")
def client(translator: Translator) -> Iterator[TestClient]:
    with TestClient(create_app(translator)) as test_client:
        yield test_client


@pytest.fixture
def serve(translator: Translator) -> Iterator[Callable[..., TestClient]]:
    """``serve(defaults=None, **settings)``: a client of a new app, its lifespan running."""
    with ExitStack() as stack:
        def make(defaults: dict[str, Any] | None = None, **settings: Any) -> TestClient:
            app = create_app(translator, ServeSettings(**settings), defaults)
            return stack.enter_context(TestClient(app))

        yield make


class Gate:
    """Holds ``translator.translate`` until opened; records what each call decoded."""

    def __init__(self, translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = threading.Event()
        self.calls: list[list[str]] = []
        original = translator.translate

        def held(sentences: list[str], *args: Any, **kwargs: Any) -> Any:
            self.calls.append(list(sentences))
            assert self.open.wait(30), "the gate was never opened"
            if any("BOOM" in s for s in sentences):
                raise RuntimeError("the model broke")
            return original(sentences, *args, **kwargs)

        monkeypatch.setattr(translator, "translate", held)


def until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def offline(translator: Translator, sentences: list[str], **options: Any) -> list[dict[str, Any]]:
    return [r.to_dict() for r in translator.translate(sentences, options, return_details=True)]


def close_scores(value: Any) -> Any:
    """``value`` with each float as pytest.approx: a batch's padding moves the last bits of a
    score, never the translation."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-5, abs=1e-5)
    if isinstance(value, dict):
        return {k: close_scores(v) for k, v in value.items()}
    if isinstance(value, list):
        return [close_scores(v) for v in value]
    return value


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


# --------------------------------------------------------------------------- /v1/translate


def test_translations_are_the_offline_translators(client: TestClient,
                                                  translator: Translator) -> None:
    response = client.post("/v1/translate", json={"sentences": SENTENCES,
                                                  "options": {"strategy": "greedy"}})
    assert response.status_code == 200
    assert response.json() == {"translations": offline(translator, SENTENCES, strategy="greedy")}
    # Without options: the run's decode section (beam 3 here).
    default = client.post("/v1/translate", json={"sentences": SENTENCES[:1]}).json()
    assert default["translations"] == offline(translator, SENTENCES[:1])


def test_beam_search_returns_the_n_best_list(client: TestClient, translator: Translator) -> None:
    options = {"strategy": "beam", "beam_size": 4, "n_best": 3, "length_penalty": 0.6}
    got = client.post("/v1/translate", json={"sentences": ["我喜欢茶。"], "options": options})
    result = got.json()["translations"][0]
    assert len(result["nbest"]) == 3
    scores = [e["norm_score"] for e in result["nbest"]]
    assert scores == sorted(scores, reverse=True)
    assert result["translation"] == result["nbest"][0]["translation"]
    assert result == offline(translator, ["我喜欢茶。"], **options)[0]


def test_attention_comes_with_its_token_labels(client: TestClient,
                                               translator: Translator) -> None:
    got = client.post("/v1/translate", json={"sentences": SENTENCES, "attention": True})
    assert got.status_code == 200
    expected = translator.translate(SENTENCES, return_details=True, with_attention=True)
    for result, reference in zip(got.json()["translations"], expected, strict=True):
        attention = result["attention"]
        source, target = translator.attention_labels(reference)
        assert attention["source_tokens"] == source and attention["target_tokens"] == target
        weights = attention["weights"]
        assert len(weights) == len(result["tokens"])  # target x source
        assert all(len(row) == len(result["src_tokens"]) for row in weights)
        if reference.attention is not None:
            assert torch.allclose(torch.tensor(weights), reference.attention, atol=1e-4)
    assert got.json()["translations"][1]["attention"]["weights"] == []  # the empty line


def test_prefixes_start_the_translations(client: TestClient, translator: Translator) -> None:
    prefixes = ["Tom", None, "", "I"]
    got = client.post("/v1/translate", json={"sentences": SENTENCES, "prefixes": prefixes})
    results = got.json()["translations"]
    assert results[0]["translation"].startswith("Tom")
    assert results[3]["translation"].startswith("I")
    expected = translator.translate(SENTENCES, prefixes=prefixes, return_details=True)
    assert results == [r.to_dict() for r in expected]


def test_a_seed_reproduces_samples(client: TestClient, translator: Translator) -> None:
    body = {"sentences": SENTENCES, "options": {"strategy": "sample", "temperature": 1.5},
            "seed": 7}
    first = client.post("/v1/translate", json=body).json()
    assert client.post("/v1/translate", json=body).json() == first
    expected = translator.translate(SENTENCES, {"strategy": "sample", "temperature": 1.5},
                                    seed=7, return_details=True)  # fmt: skip
    assert first["translations"] == [r.to_dict() for r in expected]


def test_no_sentences_no_translations(client: TestClient) -> None:
    assert client.post("/v1/translate", json={"sentences": []}).json() == {"translations": []}


@pytest.mark.parametrize(("body", "field", "message"), [
    (b"{\"sentences\": [", None, "invalid JSON: Expecting value at line 1 column 16"),
    (b"", None, "empty request body"),
    (b"[1, 2]", None, "expected a JSON object"),
    (b"{\"sentence\": [\"a\"]}", "sentence", "unknown field 'sentence'"),
    (b"{\"sentences\": \"a\"}", "sentences", "sentences: expected a list of strings"),
    (b"{\"sentences\": [\"a\", 3]}", "sentences[1]", "expected a string, got the number 3"),
    (b"{\"sentences\": [\"a\"], \"prefixes\": [\"a\", \"b\"]}", "prefixes", "2 given for 1"),
    (b"{\"sentences\": [\"a\"], \"attention\": \"yes\"}", "attention", "expected true or false"),
    (b"{\"sentences\": [\"a\"], \"seed\": 1.5}", "seed", "expected an integer"),
    (b"{\"sentences\": [\"a\"], \"options\": [1]}", "options", "an object of decoding options"),
    (b"{\"sentences\": [\"a\"], \"options\": {\"max_len_b\": 500}}", "options.max_len_b",
     "set by the server (nmt serve --max-len-b)"),
    (b"{\"sentences\": [\"a\"], \"options\": {\"beam_size\": 99}}", "options.beam_size",
     "at most 16 on this server"),
    (b"{\"sentences\": [\"a\"], \"target\": \"zh\"}", "target",
     "Chinese (zh) is not available as a target language from Chinese (zh)"),
])  # fmt: skip
def test_a_bad_request_is_a_400_naming_the_field(client: TestClient, body: bytes,
                                                 field: str | None, message: str) -> None:
    got = error_of(client.post("/v1/translate", content=body,
                               headers={"content-type": "application/json"}), 400)
    assert message in got["error"]
    assert got.get("field") == field


@pytest.mark.parametrize("options", [{"beam_size": 0}, {"strategy": "fast"}, {"top_p": 2},
                                     {"n_best": 9}, {"nope": 1}, {"temperature": "hot"}])
def test_a_bad_option_has_the_message_of_the_command_line(client: TestClient,
                                                          translator: Translator,
                                                          options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as cli:  # what `nmt translate` prints after "nmt: error: "
        translator.decode_config(options)
    got = error_of(client.post("/v1/translate", json={"sentences": ["a"], "options": options}),
                   400)
    assert got["error"] == str(cli.value)
    assert got["field"] == f"options.{next(iter(options))}"


def test_a_prefix_longer_than_the_model_outputs_is_a_400(client: TestClient) -> None:
    got = error_of(client.post("/v1/translate", json={
        "sentences": ["我", "你"], "prefixes": [None, " ".join(["Tom"] * 80)]}), 400)
    assert got["field"] == "prefixes[1]" and "the model outputs at most" in got["error"]


def test_the_server_s_defaults_apply_to_every_request(serve: Callable[..., TestClient],
                                                      translator: Translator) -> None:
    client = serve(defaults={"strategy": "greedy", "max_len_b": 1})
    got = client.post("/v1/translate", json={"sentences": SENTENCES}).json()
    assert got["translations"] == offline(translator, SENTENCES, strategy="greedy", max_len_b=1)


# --------------------------------------------------------------------------- limits


def test_limits_are_413s(serve: Callable[..., TestClient]) -> None:
    client = serve(max_body_bytes=2048, max_sentences=3, max_chars=20)
    too_big = json.dumps({"sentences": ["茶" * 10] * 100}).encode()
    assert "the limit is 2048" in error_of(client.post("/v1/translate", content=too_big), 413)[
        "error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams in
        yield b'{"sentences": ['
        for _ in range(200):
            yield b'"aaaaaaaaaa",'
        yield b'"a"]}'

    assert error_of(client.post("/v1/translate", content=chunks()), 413)
    many = error_of(client.post("/v1/translate", json={"sentences": ["a"] * 4}), 413)
    assert many["field"] == "sentences" and "limit is 3" in many["error"]
    long = error_of(client.post("/v1/translate", json={"sentences": ["a", "b" * 21]}), 413)
    assert long["field"] == "sentences[1]" and "limit is 20" in long["error"]
    assert client.post("/v1/translate", json={"sentences": ["a" * 20] * 3}).status_code == 200


def test_a_full_queue_is_a_503_with_retry_after(serve: Callable[..., TestClient],
                                                translator: Translator,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve(max_batch=1, max_queue=2, max_sentences=2)
    gate = Gate(translator, monkeypatch)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/v1/translate", json={"sentences": ["我"]})
        until(lambda: len(gate.calls) == 1)  # decoding, held
        queued = [pool.submit(client.post, "/v1/translate", json={"sentences": [s]})
                  for s in ("你", "他")]  # fmt: skip
        until(lambda: client.app.state.service.batcher.queued == 2)
        full = client.post("/v1/translate", json={"sentences": ["好"]})
        got = error_of(full, 503)
        assert "busy" in got["error"] and int(full.headers["retry-after"]) >= 1
        gate.open.set()
        assert [f.result().status_code for f in (first, *queued)] == [200, 200, 200]


def test_a_request_not_answered_in_time_is_a_504(serve: Callable[..., TestClient],
                                                 translator: Translator,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve(timeout=0.3)
    gate = Gate(translator, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(client.post, "/v1/translate", json={"sentences": ["我"]})
        until(lambda: len(gate.calls) == 1)
        late = client.post("/v1/translate", json={"sentences": ["你"]})  # queued behind it
        assert "not translated within 0.3 s" in error_of(late, 504)["error"]
        assert error_of(held.result(), 504)  # the held one too, while decoding
    gate.open.set()
    assert client.post("/v1/translate", json={"sentences": ["他"]}).status_code == 200


def test_a_failing_batch_fails_only_its_own_requests(serve: Callable[..., TestClient],
                                                     translator: Translator,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve()
    gate = Gate(translator, monkeypatch)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/v1/translate", json={"sentences": ["我"]})
        until(lambda: len(gate.calls) == 1)
        bad = pool.submit(client.post, "/v1/translate", json={"sentences": ["BOOM"]})
        until(lambda: client.app.state.service.batcher.queued == 1)
        good = pool.submit(client.post, "/v1/translate", json={"sentences": ["他很高兴。"]})
        until(lambda: client.app.state.service.batcher.queued == 2)
        gate.open.set()
        assert first.result().status_code == 200
        failed = error_of(bad.result(), 500)
        assert "translation failed (RuntimeError)" in failed["error"]
        assert "Traceback" not in bad.result().text
        assert good.result().status_code == 200
    assert gate.calls[1] == ["BOOM", "他很高兴。"]  # they were one batch, decoded again alone
    assert client.post("/v1/translate", json={"sentences": ["你"]}).status_code == 200


# --------------------------------------------------------------------------- the API key


def test_with_a_key_every_request_but_the_exempt_ones_needs_it(
        serve: Callable[..., TestClient]) -> None:
    client = serve(api_key="s3cret")
    body = {"sentences": ["我"]}
    missing = error_of(client.post("/v1/translate", json=body), 403)
    assert "API key is required" in missing["error"]
    wrong = client.post("/v1/translate", json=body, headers={"X-API-Key": "guess"})
    assert error_of(wrong, 403) == {"error": "Invalid API key"}
    for headers in ({"X-API-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}):
        assert client.post("/v1/translate", json=body, headers=headers).status_code == 200
    # LibreTranslate's body field, JSON or form, on its routes only
    lt = {"q": "我", "source": "zh", "target": "en"}
    assert client.post("/translate", json={**lt, "api_key": "s3cret"}).status_code == 200
    assert client.post("/translate", data={**lt, "api_key": "s3cret"}).status_code == 200
    assert error_of(client.post("/translate", json={**lt, "api_key": "no"}), 403) == {
        "error": "Invalid API key"}
    assert error_of(client.post("/translate", json=lt), 403)
    assert error_of(client.post("/detect", data={"q": "我"}), 403)
    assert error_of(client.post("/v1/translate", json={**body, "api_key": "s3cret"}), 403)
    assert error_of(client.get("/metrics"), 403)
    assert client.get("/metrics", headers={"X-API-Key": "s3cret"}).status_code == 200
    for exempt in ("/", "/static/app.js", "/health", "/languages"):
        assert client.get(exempt).status_code == 200, exempt


# --------------------------------------------------------------------------- the rest


def test_health_metrics_and_unknown_paths(serve: Callable[..., TestClient]) -> None:
    client = serve()
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/v1/translate", json={"sentences": ["我", "你"]})
    client.post("/v1/translate", json={"sentences": "no"})
    assert error_of(client.get("/no/such/page"), 404) == {"error": "Not Found"}
    assert error_of(client.get("/v1/translate"), 405)
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text

    def value(sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        assert match, f"no {sample} in\n{text}"
        return float(match[1])

    assert value('nmt_requests_total{endpoint="/v1/translate",status="200"}') == 1
    assert value('nmt_requests_total{endpoint="/v1/translate",status="400"}') == 1
    assert value('nmt_requests_total{endpoint="other",status="404"}') == 1
    assert value('nmt_sentences_total{endpoint="/v1/translate"}') == 2
    assert value("nmt_batch_sentences_count") == 1 and value("nmt_batch_sentences_sum") == 2
    assert value('nmt_request_seconds_count{endpoint="/v1/translate"}') == 3
    assert value("nmt_queue_sentences") == 0


def test_the_page_is_served_and_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    static = Path(__file__).resolve().parents[1] / "nmt" / "serve" / "static"
    names = sorted(p.name for p in static.iterdir())
    assert names == ["app.js", "index.html", "style.css"]
    for name in names:
        text = client.get(f"/static/{name}").text
        assert text == (static / name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), name
    for reference in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        if reference != "data:,":  # the empty icon: no request at all
            assert reference.startswith("/static/") and client.get(reference).status_code == 200
    assert error_of(client.get("/static/nope.js"), 404)


def at_once(url: str, sentences: list[str], options: dict[str, Any] | None = None
            ) -> list[dict[str, Any]]:  # fmt: skip
    """Each sentence's translation, every sentence its own client, all at once."""
    extra = {"options": options} if options else {}

    async def one(client: httpx.AsyncClient, sentence: str) -> dict[str, Any]:
        response = await client.post("/v1/translate", json={"sentences": [sentence], **extra})
        assert response.status_code == 200, response.text
        return response.json()["translations"][0]  # type: ignore[no-any-return]

    async def everyone() -> list[dict[str, Any]]:
        limits = httpx.Limits(max_connections=len(sentences))
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            return await asyncio.gather(*(one(client, s) for s in sentences))

    return asyncio.run(everyone())


def test_many_clients_at_once_each_get_their_own_translations(translator: Translator) -> None:
    sentences = [f"{i}号房间在哪里？" if i % 2 else f"我有{i}只猫。" for i in range(32)]
    expected = offline(translator, sentences)  # one batch offline; the server batches its own
    with live_server(create_app(translator, ServeSettings(max_batch=8, workers=2))) as url:
        got = at_once(url, sentences)
        metrics = httpx.get(f"{url}/metrics").text
    assert got == close_scores(expected)
    batches = re.search(r"^nmt_batch_sentences_count (\S+)$", metrics, re.MULTILINE)
    assert batches is not None and float(batches[1]) < len(sentences)  # some went together


def test_many_greedy_clients_stream_through_one_running_batch(translator: Translator) -> None:
    sentences = [f"{i}号房间在哪里？" if i % 2 else f"我有{i}只猫。" for i in range(32)]
    expected = offline(translator, sentences, strategy="greedy")
    settings = ServeSettings(max_batch=8, workers=2, continuous=True)
    with live_server(create_app(translator, settings)) as url:
        got = at_once(url, sentences, {"strategy": "greedy"})
        metrics = httpx.get(f"{url}/metrics").text
    assert got == close_scores(expected)
    steps = re.search(r"^nmt_batch_sentences_count (\S+)$", metrics, re.MULTILINE)
    rows = re.search(r"^nmt_batch_sentences_sum (\S+)$", metrics, re.MULTILINE)
    assert steps is not None and rows is not None
    assert float(rows[1]) > float(steps[1])  # steps decoded several sentences at once
