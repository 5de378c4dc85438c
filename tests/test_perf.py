"""nmt.perf: the performance policy, applied alike by the CLI and the Python API, and its off
switch."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt import perf
from nmt.errors import ConfigError

CPU = torch.device("cpu")
ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def no_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in perf.KERNEL_CACHES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def policy_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(perf.POLICY_ENV, "off")


def step_shape(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """An incremental decoding step's queries and keys: 70 rows x 4 heads x 1 query, 9 keys."""
    return torch.zeros(70, 4, 1, 8, dtype=dtype), torch.zeros(70, 4, 9, 8, dtype=dtype)


# ------------------------------------------------------------------ the switch


@pytest.mark.parametrize("value", ["", "on", "ON", " on "])
def test_the_policy_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(perf.POLICY_ENV, value)
    assert perf.enabled()


def test_a_bad_switch_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(perf.POLICY_ENV, "fast")
    with pytest.raises(ConfigError, match="NMT_PERF_POLICY='fast'"):
        perf.enabled()


def test_the_cli_reports_a_bad_switch_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, perf.POLICY_ENV: "maybe"}
    done = subprocess.run([sys.executable, "-m", "nmt", "--version"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "nmt: error: NMT_PERF_POLICY='maybe': expected on or off"
    ]


# ------------------------------------------------------------------ kernel caches


def test_apply_caps_the_kernel_caches(no_caches: None) -> None:
    perf.apply()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    assert os.environ["LRU_CACHE_CAPACITY"] == "8"
    perf.apply()  # idempotent
    assert os.environ["LRU_CACHE_CAPACITY"] == "8"


def test_a_cache_size_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "1024")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    perf.apply()
    assert os.environ["LRU_CACHE_CAPACITY"] == "1024"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"


def test_policy_off_sets_no_cache(no_caches: None, policy_off: None) -> None:
    perf.apply()
    assert not any(name in os.environ for name in perf.KERNEL_CACHES)


def _caches_seen_by(code: str, tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in perf.KERNEL_CACHES}
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport os\n"
         "print(os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'), "
         "os.environ.get('LRU_CACHE_CAPACITY'))"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return out.stdout.split()


def test_the_api_applies_the_policy_as_the_cli_does(tmp_path: Path) -> None:
    # Translator.load on a missing run fails, but only after applying the policy: a Python
    # user decodes with the same caches as `nmt translate`.
    code = ("from nmt.translate import Translator\n"
            "try:\n    Translator.load('no-such-run')\nexcept Exception:\n    pass")  # fmt: skip
    assert _caches_seen_by(code, tmp_path) == ["16", "8"]
    assert _caches_seen_by("import nmt.translate", tmp_path) == ["None", "None"]  # not at import


# ------------------------------------------------------------------ threads


def test_physical_cores_is_at_most_the_logical_cpus() -> None:
    assert 1 <= perf.physical_cores() <= (os.cpu_count() or 1)


def test_training_threads_keep_a_configured_or_lower_count() -> None:
    with perf.torch_threads(1):
        assert perf.training_threads(0) == 1  # a lower count chosen by a caller is kept
        assert perf.training_threads(3) == 3  # train.threads wins


def test_torch_threads_restores_the_setting() -> None:
    before = torch.get_num_threads()
    with perf.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with perf.torch_threads(0):  # 0: left alone
        assert torch.get_num_threads() == before


def test_decoding_threads_and_workers() -> None:
    with perf.torch_threads(2):
        assert perf.decode_workers(CPU, 5) == 2
        assert perf.decode_workers(CPU, 1) == 1
        assert perf.decode_workers(torch.device("meta"), 5) == 1  # only a CPU runs batches at once
        assert perf.decode_threads(CPU, 100, 5) == 1  # two workers, one thread each
        assert perf.decode_threads(CPU, 3, 1) == 1  # a few sentences: one thread
        assert perf.decode_threads(CPU, 100, 1) == 0  # one big batch: the process's setting


def test_serve_decoders_share_the_threads() -> None:
    with perf.torch_threads(2):
        assert perf.serve_decoders(CPU, 0) == (2, 1)  # one decoder per thread, one thread each
        assert perf.serve_decoders(CPU, 1) == (1, 0)  # one decoder: the process's setting
        assert perf.serve_decoders(torch.device("meta"), 0) == (1, 0)
    with perf.torch_threads(4):
        assert perf.serve_decoders(CPU, 2) == (2, 2)


def test_policy_off_serves_on_the_process_threads(policy_off: None) -> None:
    with perf.torch_threads(2):
        assert perf.serve_decoders(CPU, 0) == (1, 0)
        assert perf.serve_decoders(CPU, 2) == (2, 0)


def test_policy_off_decodes_one_batch_on_the_process_threads(policy_off: None) -> None:
    with perf.torch_threads(2):
        assert perf.decode_workers(CPU, 5) == 1
        assert perf.decode_threads(CPU, 3, 1) == 0
        assert perf.default_threads() == 2  # torch's own setting


# ------------------------------------------------------------------ memory


@pytest.mark.skipif(not ON_GLIBC, reason="malloc_trim exists on glibc Linux only")
def test_malloc_trim_found_on_glibc() -> None:
    assert perf._malloc_trim() is not None


def test_release_free_memory_keeps_live_tensors() -> None:
    keep = torch.arange(1_000_000, dtype=torch.float32)
    garbage = [torch.randn(257, 1031) for _ in range(50)]
    del garbage
    perf.release_free_memory()
    assert keep.sum().item() == pytest.approx(sum(range(1_000_000)), rel=1e-6)


class _CountingTrim:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pad: int) -> int:
        self.calls += 1
        return 1


@pytest.fixture
def trim(monkeypatch: pytest.MonkeyPatch) -> _CountingTrim:
    counting = _CountingTrim()
    monkeypatch.setattr(perf, "_malloc_trim", lambda: counting)
    return counting


def test_training_trims_every_few_cpu_steps(trim: _CountingTrim) -> None:
    for step in range(1, 3 * perf.TRIM_EVERY_STEPS + 1):
        perf.trim_after_training_step(step, CPU)
    assert trim.calls == 3
    perf.trim_after_training_step(perf.TRIM_EVERY_STEPS, torch.device("meta"))  # not a CPU heap
    assert trim.calls == 3


def test_policy_off_trims_nothing(trim: _CountingTrim, policy_off: None) -> None:
    perf.release_free_memory()
    perf.trim_after_training_step(perf.TRIM_EVERY_STEPS, CPU)
    assert trim.calls == 0


# ------------------------------------------------------------------ attention


def test_explicit_attention_for_decoding_steps_and_16_bit_floats_on_a_cpu() -> None:
    q, k = step_shape()
    assert perf.explicit_attention_is_faster(q, k)
    long_q = torch.zeros(70, 4, 20, 8)  # a training batch in fp32: SDPA
    assert not perf.explicit_attention_is_faster(long_q, long_q)
    assert perf.explicit_attention_is_faster(long_q.bfloat16(), long_q.bfloat16())
    few_rows_q, few_rows_k = torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 9, 8)  # 8 queries in all
    assert not perf.explicit_attention_is_faster(few_rows_q, few_rows_k)


def test_policy_off_always_attends_through_sdpa(policy_off: None) -> None:
    q, k = step_shape(torch.bfloat16)
    assert not perf.explicit_attention_is_faster(q, k)


def test_bf16_decoding_attends_in_fp32_on_a_cpu_outside_autocast() -> None:
    _, keys = step_shape(torch.bfloat16)
    assert perf.decoding_attention_dtype(keys) == torch.float32
    assert perf.decoding_attention_dtype(keys.float()) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the matmuls would cast back
        assert perf.decoding_attention_dtype(keys) == torch.bfloat16


def test_policy_off_attends_in_the_keys_dtype(policy_off: None) -> None:
    _, keys = step_shape(torch.bfloat16)
    assert perf.decoding_attention_dtype(keys) == torch.bfloat16


def test_both_attention_forms_compute_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from nmt.models.attention import dot_product_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(70, 4, 1, 8), torch.randn(70, 4, 9, 8), torch.randn(70, 4, 9, 8)
    mask = torch.ones(70, 1, 1, 9, dtype=torch.bool)
    mask[:, :, :, 7:] = False
    explicit, _ = dot_product_attention(q, k, v, mask)
    monkeypatch.setenv(perf.POLICY_ENV, "off")
    sdpa, _ = dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(explicit, sdpa)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def test_every_setting_links_to_its_measurement() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
    anchors = {_anchor(line.lstrip("#")) for line in docs.read_text(encoding="utf-8").splitlines()
               if line.startswith("#")}  # fmt: skip
    source = Path(perf.__file__).read_text(encoding="utf-8")
    cited = set(re.findall(r"docs/performance\.md#([a-z0-9-]+)", source))
    assert {"policy-kernel-caches", "policy-threads", "policy-memory-trimming",
            "policy-attention-without-sdpa", "policy-fp32-attention-in-bf16-decoding"} <= cited
    assert cited <= anchors, f"no such section in docs/performance.md: {cited - anchors}"
