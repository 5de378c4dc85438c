"""Imports point one way (docs/CONTRACTS.md): lower layers never import higher ones.

Parses every module of the package with ``ast`` (imports inside functions count too), so a
lazy import cannot sneak an upward dependency past the check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nmt"

# For each layer, the nmt packages/modules it must NOT import. Every module belongs to one
# (see test_every_module_has_a_layer), except the entry points in UNRESTRICTED.
_ABOVE_LEAVES = {"nmt.config", "nmt.datautil", "nmt.models", "nmt.decoding", "nmt.checkpoint",
                 "nmt.training", "nmt.translate", "nmt.evaluate", "nmt.run_eval", "nmt.tuning",
                 "nmt.serve", "nmt.export", "nmt.cli"}
# The server sits on the Translator, under the CLI only.
_INFERENCE = {"nmt.translate", "nmt.evaluate", "nmt.run_eval", "nmt.tuning", "nmt.serve",
              "nmt.export"}
FORBIDDEN: dict[str, set[str]] = {
    "nmt.errors": {"*"},
    "nmt.fileio": _ABOVE_LEAVES,
    "nmt.config": _ABOVE_LEAVES - {"nmt.config"},
    "nmt.runtime": _ABOVE_LEAVES,
    "nmt.perf": _ABOVE_LEAVES | {"nmt.runtime", "nmt.fileio"},  # the policy: torch + errors only
    "nmt.plots": _ABOVE_LEAVES,
    "nmt.attention_plot": _ABOVE_LEAVES,
    "nmt.datautil": {"nmt.models", "nmt.decoding", "nmt.checkpoint", "nmt.training", "nmt.cli"}
    | _INFERENCE,
    "nmt.models": {"nmt.datautil", "nmt.decoding", "nmt.checkpoint", "nmt.training", "nmt.cli"}
    | _INFERENCE,
    # decoding may read the special token ids from datautil.vocab (a lower layer)
    "nmt.decoding": {"nmt.checkpoint", "nmt.training", "nmt.cli"} | _INFERENCE,
    # The run directory's checkpoint format: below training and inference alike, so that
    # decoding a run never needs the training package.
    "nmt.checkpoint": {"nmt.config", "nmt.datautil", "nmt.models", "nmt.decoding",
                       "nmt.training", "nmt.cli"} | _INFERENCE,
    "nmt.training": {"nmt.cli"} | _INFERENCE,
    "nmt.translate": {"nmt.training", "nmt.cli", "nmt.evaluate", "nmt.run_eval", "nmt.tuning",
                      "nmt.serve", "nmt.export"},
    "nmt.evaluate": {"nmt.training", "nmt.cli", "nmt.run_eval", "nmt.tuning", "nmt.serve",
                     "nmt.export"},
    "nmt.run_eval": {"nmt.training", "nmt.cli", "nmt.tuning", "nmt.serve", "nmt.export"},
    "nmt.tuning": {"nmt.training", "nmt.cli", "nmt.serve", "nmt.export"},
    "nmt.serve": {"nmt.training", "nmt.cli", "nmt.evaluate", "nmt.run_eval", "nmt.tuning",
                  "nmt.export"},
    # Above translate (it loads a run as a Translator does); the CTranslate2 engine that reads
    # an export is in nmt.translate, so that translating never imports the exporter.
    "nmt.export": {"nmt.training", "nmt.cli", "nmt.evaluate", "nmt.run_eval", "nmt.tuning",
                   "nmt.serve"},
}
# Entry points: the package's lazy ``Translator`` export, ``python -m nmt``, the commands.
UNRESTRICTED = {"nmt", "nmt.__main__", "nmt.cli"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in out if m == "nmt" or m.startswith("nmt.")}


def layer_of(module: str) -> str | None:
    for layer in sorted(FORBIDDEN, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def within(module: str, target: str) -> bool:
    return module == target or module.startswith(target + ".")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_one_way(path: Path) -> None:
    name = module_name(path)
    layer = layer_of(name)
    if layer is None:
        assert name in UNRESTRICTED or within(name, "nmt.cli"), f"{name} has no layer"
        return
    banned = FORBIDDEN[layer]
    bad = sorted(
        m
        for m in imported_modules(path)
        if not within(m, layer)
        and ("*" in banned or any(within(m, b) for b in banned))
    )
    assert not bad, f"{name} ({layer} layer) imports {bad}"


def test_every_layer_exists() -> None:
    names = {module_name(p) for p in MODULES}
    for layer in FORBIDDEN:
        assert any(within(n, layer) for n in names), f"{layer} has no module"


def test_every_module_has_a_layer() -> None:
    orphans = [
        n for n in (module_name(p) for p in MODULES)
        if layer_of(n) is None and n not in UNRESTRICTED and not within(n, "nmt.cli")
    ]
    assert not orphans, f"add these modules to FORBIDDEN: {orphans}"


def test_only_the_train_command_imports_training() -> None:
    """Decoding a run (translate, evaluate, tune, average, a server) never needs training."""
    users = sorted(
        module_name(p) for p in MODULES
        if not within(module_name(p), "nmt.training")
        and any(within(m, "nmt.training") for m in imported_modules(p))
    )
    assert users == ["nmt.cli.train"], users
