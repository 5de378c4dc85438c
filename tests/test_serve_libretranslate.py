"""LibreTranslate's API as its clients see it: the exact response shapes of /translate
(string and list q, alternatives, detectedLanguage, form bodies), /languages and /detect, its
error shape and messages, and its language codes, on a tiny random zh->en Transformer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="nmt serve's tests need the serve extra: "
                    "pip install 'nmt[serve]'")
pytest.importorskip("prometheus_client", reason="pip install 'nmt[serve]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the dev extra)")

import torch  # noqa: E402
from serve_support import build_run  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from nmt.serve.app import create_app  # noqa: E402
from nmt.serve.libretranslate import detect, resolve  # noqa: E402
from nmt.serve.protocol import ApiError  # noqa: E402
from nmt.translate import Translator  # noqa: E402

ZH = ["我喜欢茶。", "汤姆在哪里？", "他很高兴。"]


@pytest.fixture(scope="module")
def translator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Translator]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = build_run(tmp_path_factory.getbasetemp() / "translate-runs", "transformer")
    yield Translator.load(run, device="cpu")
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def client(translator: Translator) -> Iterator[TestClient]:
    with TestClient(create_app(translator)) as test_client:
        yield test_client


def post(client: TestClient, body: dict[str, Any], status: int = 200) -> Any:
    response = client.post("/translate", json=body)
    assert response.status_code == status, response.text
    return response.json()


def test_a_string_q_gets_a_string(client: TestClient, translator: Translator) -> None:
    got = post(client, {"q": ZH[0], "source": "zh", "target": "en", "format": "text"})
    assert got == {"translatedText": translator.translate(ZH[:1])[0]}


def test_a_list_q_gets_a_list(client: TestClient, translator: Translator) -> None:
    got = post(client, {"q": ZH, "source": "zh", "target": "en"})
    assert got == {"translatedText": translator.translate(ZH)}


def test_alternatives_are_the_other_beam_hypotheses(client: TestClient,
                                                    translator: Translator) -> None:
    got = post(client, {"q": ZH[0], "source": "zh", "target": "en", "alternatives": 2})
    assert set(got) == {"translatedText", "alternatives"}
    (best,) = translator.translate(ZH[:1], {"strategy": "beam", "beam_size": 3, "n_best": 3},
                                   return_details=True)  # fmt: skip
    assert got["translatedText"] == best.translation
    others = [e.translation for e in best.nbest[1:] if e.translation != best.translation]
    assert got["alternatives"] == list(dict.fromkeys(others))
    assert 1 <= len(got["alternatives"]) <= 2
    listed = post(client, {"q": ZH, "source": "zh", "target": "en", "alternatives": "1"})
    assert isinstance(listed["translatedText"], list) and len(listed["alternatives"]) == 3
    assert all(isinstance(a, list) and len(a) <= 1 for a in listed["alternatives"])


def test_auto_reports_the_detected_language(client: TestClient, translator: Translator) -> None:
    got = post(client, {"q": ZH[0], "source": "auto", "target": "en"})
    assert got == {"translatedText": translator.translate(ZH[:1])[0],
                   "detectedLanguage": {"confidence": 100.0, "language": "zh"}}
    listed = post(client, {"q": ZH[:2], "source": "auto", "target": "en"})
    assert listed["detectedLanguage"] == [{"confidence": 100.0, "language": "zh"}] * 2
    # Nothing to tell the languages apart by: the model's source language, confidence 0.
    digits = post(client, {"q": "123", "source": "auto", "target": "en"})
    assert digits["detectedLanguage"] == {"confidence": 0.0, "language": "zh"}


def test_a_form_body_and_query_parameters_work_as_json_does(client: TestClient) -> None:
    json_answer = post(client, {"q": ZH[1], "source": "zh", "target": "en"})
    form = client.post("/translate", data={"q": ZH[1], "source": "zh", "target": "en",
                                           "format": "text"})
    assert form.status_code == 200 and form.json() == json_answer
    query = client.post("/translate", params={"q": ZH[1], "source": "zh", "target": "en"})
    assert query.json() == json_answer
    repeated = client.post("/translate", content=f"q={ZH[0]}&q={ZH[1]}&source=zh&target=en",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert len(repeated.json()["translatedText"]) == 2


def test_each_line_of_a_text_is_a_sentence(client: TestClient, translator: Translator) -> None:
    got = post(client, {"q": f"{ZH[0]}\n\n{ZH[2]}\r\n{ZH[1]}", "source": "zh", "target": "en"})
    lines = translator.translate([ZH[0], "", ZH[2], ZH[1]])
    assert got == {"translatedText": "\n".join(lines)}


def test_languages_and_codes(client: TestClient) -> None:
    assert client.get("/languages").json() == [
        {"code": "en", "name": "English", "targets": []},
        {"code": "zh", "name": "Chinese", "targets": ["en"]},
        {"code": "zt", "name": "Chinese (traditional)", "targets": ["en"]},
    ]
    for code in ("zh", "zt", "zh-Hans", "zh-hant", "ZH-CN", "zh-TW"):
        assert post(client, {"q": ZH[0], "source": code, "target": "en"})["translatedText"]
    assert resolve("zh-TW", "target").script == "tw" and resolve("zt", "target").script == "hant"
    assert resolve("zh", "target").script is None and resolve("EN", "target").lang == "en"


def test_detect(client: TestClient) -> None:
    assert client.post("/detect", json={"q": "我喜欢茶。"}).json() == [
        {"confidence": 100.0, "language": "zh"}]
    english = client.post("/detect", data={"q": "Where is the station? 车站"}).json()
    assert [d["language"] for d in english] == ["en", "zh"]
    assert sum(d["confidence"] for d in english) == pytest.approx(100.0, abs=0.2)
    assert detect("123 !!!") == [{"confidence": 0.0, "language": "en"}]


@pytest.mark.parametrize(("body", "message"), [
    ({"source": "zh", "target": "en"}, "Invalid request: missing q parameter"),
    ({"q": "", "source": "zh", "target": "en"}, "Invalid request: missing q parameter"),
    ({"q": "茶", "target": "en"}, "Invalid request: missing source parameter"),
    ({"q": "茶", "source": "zh"}, "Invalid request: missing target parameter"),
    ({"q": "茶", "source": "xx", "target": "en"}, "xx is not supported"),
    ({"q": "茶", "source": "en", "target": "zh"},
     "Chinese (zh) is not available as a target language from English (en)"),
    ({"q": "茶", "source": "zh", "target": "zt"},
     "Chinese (traditional) (zt) is not available as a target language from Chinese (zh)"),
    ({"q": "<p>茶</p>", "source": "zh", "target": "en", "format": "html"},
     "html format is not supported"),
    ({"q": "茶", "source": "zh", "target": "en", "alternatives": "some"},
     "Invalid request: alternatives parameter is not a number"),
    ({"q": "茶", "source": "zh", "target": "en", "alternatives": 16},
     "Invalid request: alternatives parameter must be <= 15"),
    ({"q": ["茶", 5], "source": "zh", "target": "en"},
     "Invalid request: q must be a string or a list"),
])  # fmt: skip
def test_errors_have_libretranslates_shape(client: TestClient, body: dict[str, Any],
                                           message: str) -> None:
    got = post(client, body, status=400)
    assert list(got) == ["error"]
    assert got["error"].startswith(message)


def test_limits_and_bad_bodies(translator: Translator) -> None:
    from nmt.serve.settings import ServeSettings

    with TestClient(create_app(translator, ServeSettings(max_sentences=2, max_chars=5))) as c:
        lines = c.post("/translate", json={"q": "茶\n茶\n茶", "source": "zh", "target": "en"})
        assert lines.status_code == 413 and lines.json() == {
            "error": "Invalid request: request (3) exceeds text limit (2 lines)"}
        long = c.post("/translate", json={"q": "茶" * 6, "source": "zh", "target": "en"})
        assert long.status_code == 413 and list(long.json()) == ["error"]
        broken = c.post("/translate", content=b"{", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and broken.json()["error"].startswith("invalid JSON")
        not_object = c.post("/translate", json=["q"])
        assert not_object.json() == {"error": "Invalid JSON format"}


def test_resolve_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ApiError, match="missing source parameter"):
        resolve(None, "source")
    with pytest.raises(ApiError, match="fr is not supported"):
        resolve("fr", "target")
