"""nmt.runtime: precision choice (native CPU bf16 detection) and returning freed memory."""

from __future__ import annotations

import platform

import pytest
import torch

from nmt import runtime
from nmt.errors import ConfigError

X86_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_tile amx_bf16 amx_int8\n"
X86_PLAIN = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
ARM_PLAIN = "processor\t: 0\nFeatures\t: fp asimd crc32\n"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(X86_BF16, True), (X86_AMX, True), (ARM_BF16, True), (X86_PLAIN, False),
     (ARM_PLAIN, False), ("", False)],
)  # fmt: skip
def test_cpuinfo_bf16_flags(cpuinfo: str, expected: bool) -> None:
    assert runtime._cpuinfo_has_bf16(cpuinfo) is expected


def test_flag_names_match_whole_words() -> None:
    # "avx512_bf16x" is not the flag; only whole words count.
    assert not runtime._cpuinfo_has_bf16("flags\t: avx512_bf16x notbf16\n")


@pytest.mark.parametrize("value", ["0", "1"])
def test_environment_overrides_detection(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: X86_BF16 if value == "0" else "")
    monkeypatch.setenv(runtime.CPU_BF16_ENV, value)
    assert runtime.cpu_has_native_bf16() is (value == "1")


def test_detection_reads_cpuinfo_without_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: X86_AMX)
    assert runtime.cpu_has_native_bf16()
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: X86_PLAIN)
    assert not runtime.cpu_has_native_bf16()


def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setenv(runtime.CPU_BF16_ENV, "1")
    assert runtime.resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setenv(runtime.CPU_BF16_ENV, "0")
    assert runtime.resolve_precision("auto", cpu) is None
    # Explicit choices are kept whatever the CPU.
    assert runtime.resolve_precision("bf16", cpu) is torch.bfloat16
    assert runtime.resolve_precision("fp32", cpu) is None
    with pytest.raises(ConfigError, match="fp16"):
        runtime.resolve_precision("fp16", cpu)


def test_tests_run_cpu_fp32() -> None:
    # conftest pins this so that results do not depend on the machine running the tests.
    assert runtime.resolve_precision("auto", torch.device("cpu")) is None


def test_cpu_name_is_the_model_name_line_of_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t: fpu\n"
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: info)
    assert runtime.cpu_name() == "AMD EPYC 9B14"
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: "")  # no /proc: platform's answer
    assert runtime.cpu_name() == (platform.processor() or platform.machine())
