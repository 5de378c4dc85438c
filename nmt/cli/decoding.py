"""The decoding options of the command line, declared once for translate, evaluate and tune.

Each option is a ``decode.*`` key of :class:`nmt.config.DecodeConfig`: :func:`decoding_options`
adds the ones a command takes to its signature (typer reads ``__signature__``), and the command
receives them as one mapping ``decode`` (key -> value, None where not given), which it hands to
the library as it is (``Translator.translate(sources, decode)``, ``run_config(run, decode)``);
the values are checked there by the config's rules, as a config file's would be.

Adding a decoding option: its field and rule in ``nmt/config.py``, one :class:`CliOption` here,
and the code that uses it (docs/CONTRACTS.md).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CliOption:
    """One ``decode.*`` key on the command line.

    Attributes:
        key: the ``DecodeConfig`` field; the flag is ``--key-with-dashes`` unless ``flags``.
        type: the value's type (``list[str]`` for a repeatable option).
        help: the help text (the default is the run's config, which every command says).
        flags: typer's parameter declarations, e.g. ``("--replace-unk/--no-replace-unk",)``.
    """

    key: str
    type: Any
    help: str
    flags: tuple[str, ...] = ()


DECODING_OPTIONS: tuple[CliOption, ...] = (
    CliOption("strategy", str, "greedy, beam or sample."),
    CliOption("beam_size", int, "Beam width (beam)."),
    CliOption("n_best", int, "Hypotheses kept per sentence (beam; <= --beam-size). Listed in "
              "jsonl; text prints the best only."),
    CliOption("length_penalty", float, "GNMT length penalty alpha; 0 ranks by raw "
              "log-probability."),
    CliOption("temperature", float, "Sampling temperature (> 0)."),
    CliOption("top_k", int, "Sample from the k most likely tokens (0 = off)."),
    CliOption("top_p", float, "Nucleus sampling: the smallest set with this mass (1.0 = off)."),
    CliOption("max_len_a", float, "Output length limit a*|src|+b: a."),
    CliOption("max_len_b", int, "Output length limit a*|src|+b: b."),
    CliOption("batch_size", int, "Sentences per batch."),
    CliOption("replace_unk", bool, "Replace each <unk> in the output by the source token it "
              "attended to most.", ("--replace-unk/--no-replace-unk",)),
    CliOption("no_repeat_ngram_size", int, "Never output an n-gram of this size twice "
              "(0 = off)."),
    CliOption("repetition_penalty", float, "Multiply the log-probability of a token already "
              "output by this (> 1 discourages repeats; 1.0 = off)."),
    CliOption("min_length", int, "No end of sentence before this many output tokens (0 = off)."),
    CliOption("banned_words", list[str], "A target word or phrase never to output "
              "(repeatable).", ("--ban",)),
)
OPTION_KEYS = tuple(o.key for o in DECODING_OPTIONS)


def _parameter(option: CliOption, panel: str) -> inspect.Parameter:
    info = typer.Option(*option.flags, help=option.help, rich_help_panel=panel,
                        show_default=False)  # fmt: skip
    return inspect.Parameter(option.key, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[option.type | None, info])  # fmt: skip


def decoding_options(panel: str, exclude: Collection[str] = ()) -> Callable[[F], F]:
    """Add the decoding options (all but ``exclude``) to a command, in the help panel
    ``panel``; the command takes them as one keyword argument ``decode: dict[str, Any]``."""
    unknown = set(exclude) - set(OPTION_KEYS)
    if unknown:
        raise ValueError(f"no decoding option {sorted(unknown)}")
    options = [o for o in DECODING_OPTIONS if o.key not in exclude]

    def wrap(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)  # typer reads objects, not strings
        if "decode" not in signature.parameters:
            raise TypeError(f"{command.__name__} needs a 'decode' parameter")
        kept = [p for name, p in signature.parameters.items() if name != "decode"]
        added = [_parameter(o, panel) for o in options]

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> Any:
            decode = {o.key: kwargs.pop(o.key, None) for o in options}
            if decode.get("banned_words") == []:  # typer gives [] for a list never given
                decode["banned_words"] = None
            return command(*args, decode=decode, **kwargs)

        with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*kept, *added])
        return with_options  # type: ignore[return-value]

    return wrap
