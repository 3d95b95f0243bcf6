"""The strategy registry: which strategy runs for the settings a user gave.

One registry (`STRATEGIES`) names every strategy, the module that holds it and
what it is for; each module has one entry point, ``train(ctx) -> Outcome``.
The table is plain data, so the CLI can list the choices without importing
TensorFlow. `choose` maps what the user asked for (``--strategy``, a device
with memory, ``--hold``, ``--init-from``, no device) to the strategy that
runs, and refuses combinations no strategy implements: no option is dropped.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwloop.errors import UsageError

if TYPE_CHECKING:
    from hwloop.strategies.base import Context, Outcome


@dataclass(frozen=True)
class StrategyEntry:
    """One registered strategy: where it lives and what it does."""

    module: str
    summary: str
    user_choice: bool = True  # offered as --strategy NAME


STRATEGIES: dict[str, StrategyEntry] = {
    "auto": StrategyEntry(
        "hwloop.strategies.auto",
        "iterative-ILA warm start; the surrogate rounds only where a measurement shows room for them, "
        "else the rest of the budget refits ILA",
    ),
    "ila": StrategyEntry("hwloop.strategies.ila", "inverse modelling on uniform queries"),
    "iila": StrategyEntry("hwloop.strategies.iila", "iterative ILA: re-query at M(t) and refit"),
    "surrogate": StrategyEntry(
        "hwloop.strategies.surrogate",
        "explore, fit a surrogate, train M through it; rounds at M(t) refit it, score, and enter M's forward "
        "pass by a mixing weight (device_weight in metrics.json)",
    ),
    "spsa": StrategyEntry("hwloop.strategies.spsa", "zeroth-order baseline (SPSA), for benchmarks"),
    "sequence": StrategyEntry(
        "hwloop.strategies.sequence", "devices with memory: tapped-delay inverse by sequence ILA", False
    ),
    "sequence_forward": StrategyEntry(
        "hwloop.strategies.sequence_forward",
        "devices with memory, device in the forward pass: sequence ILA warm start, then direct learning "
        "through a surrogate with memory",
        False,
    ),
    "held": StrategyEntry(
        "hwloop.strategies.held", "recalibrate some outputs of a run's inverse, the others held", False
    ),
    "calibrate": StrategyEntry(
        "hwloop.strategies.calibrate",
        "a new unit from an earlier run: its inverse and surrogate, the new device in the forward pass",
        False,
    ),
    "recalibrate": StrategyEntry(
        "hwloop.strategies.recalibrate",
        "a signal's predistorter recalibrated from an earlier run (--init-from) in a small budget: the "
        "parent's amplifier model corrected to the new condition, the predistorter retrained on it",
        False,
    ),
    "dpd": StrategyEntry(
        "hwloop.strategies.dpd",
        "a signal to linearise: GMP predistorter by indirect learning (ila, iila), then direct learning with "
        "the amplifier in the loop (auto, surrogate)",
        False,
    ),
    "offline": StrategyEntry(
        "hwloop.strategies.offline", "no device: fit on logged or measured pairs", False
    ),
}

USER_CHOICES = tuple(name for name, e in STRATEGIES.items() if e.user_choice)
INVERSE_FAMILIES = ("auto", "tapped", "gru", "gmp")


def choose(
    requested: str,
    *,
    stateful: bool,
    offline: bool = False,
    hold: bool = False,
    init_from: bool = False,
    mask: bool = False,
    signal: bool = False,
    prior: bool = False,
    inverse: str = "auto",
) -> str:
    """The strategy that runs for these settings; a usage error for any it cannot honour."""
    if requested not in USER_CHOICES:
        raise UsageError(f"unknown strategy {requested!r} (choose from {', '.join(USER_CHOICES)})")
    if inverse not in INVERSE_FAMILIES:
        raise UsageError(f"unknown inverse family {inverse!r} (choose from {', '.join(INVERSE_FAMILIES)})")
    if inverse == "gmp" and not signal:
        raise UsageError("--inverse gmp is a predistorter for a signal: give --signal")
    if inverse == "gru":
        if offline or not stateful:
            raise UsageError("--inverse gru is for a device with memory; this one has none")
        if requested not in ("auto", "ila", "iila"):
            raise UsageError(f"--inverse gru is trained by sequence ILA (auto, ila, iila), not {requested!r}")
    if prior and not offline:
        for flag, what in (
            (signal, "--signal"),
            (hold, "--hold"),
            (init_from, "--init-from"),
            (stateful, "a device with memory"),
            (requested == "spsa", "spsa"),
        ):
            if flag:
                raise UsageError(f"--from-log/--from-data pairs cannot join training for {what}")
    if signal:
        if offline or hold or mask:
            raise UsageError("--signal cannot be combined with offline training, --hold or --mask")
        if init_from:
            if inverse in ("tapped", "gru") or requested != "auto":
                raise UsageError(
                    "--signal with --init-from recalibrates the parent's GMP predistorter (its own method); "
                    "drop --strategy and --inverse"
                )
            return "recalibrate"
        if requested == "spsa":
            raise UsageError("--signal trains a predistorter (auto, ila, iila, surrogate); spsa has none")
        if inverse in ("tapped", "gru"):
            if requested == "surrogate":
                raise UsageError(
                    f"--inverse {inverse} with --signal is trained by sequence ILA (auto, ila, iila); "
                    "direct learning on a signal is the GMP predistorter's (--inverse gmp)"
                )
            return "sequence"
        return "dpd"
    if offline:
        if hold or init_from:
            raise UsageError(
                "--hold and --init-from need a device: offline training has nothing to calibrate"
            )
        if requested not in ("auto", "ila", "surrogate"):
            raise UsageError(f"offline training runs auto, ila or surrogate, not {requested!r}")
        return "offline"
    if hold:
        if not init_from:
            raise UsageError(
                "--hold needs --init-from RUN: the calibrated inverse whose held outputs stay put"
            )
        if stateful:
            raise UsageError("--hold works on memoryless devices only; this device has memory")
        if requested == "iila":
            raise UsageError("--strategy iila would not act: --hold recalibrates by one inverse model fit")
        if requested not in ("auto", "ila"):
            raise UsageError(f"--hold recalibrates by inverse modelling; strategy {requested!r} cannot hold")
        return "held"
    if mask and (stateful or requested == "spsa"):
        what = "a device with memory" if stateful else "spsa"
        raise UsageError(f"--mask is not supported for {what}")
    if init_from:
        if stateful:
            raise UsageError("--init-from without --hold calibrates memoryless devices only")
        if requested == "spsa":
            raise UsageError("spsa cannot start from an earlier run")
        if requested != "auto":
            raise UsageError(
                f"--strategy {requested} would not act: --init-from calibrates a new unit one way (the "
                "earlier run's surrogate corrected, the unit in the forward pass); drop --strategy"
            )
        return "calibrate"
    if stateful:
        if requested == "spsa":
            raise UsageError("spsa does not handle devices with memory: use auto, ila, iila or surrogate")
        # auto stays with iterative sequence ILA: on sim:wh direct learning did not beat it (strategies.md).
        return "sequence_forward" if requested == "surrogate" else "sequence"
    return requested


# act only on a signal's targets, its scoring and its ACPR/EVM
SIGNAL_ONLY = ("gain", "fs", "bw", "holdout", "eval_signal", "skip_reference", "cfr", "cfr_papr")
# govern device queries or the closed-loop evaluation; offline training sends none and fits a memoryless MLP
OFFLINE_UNUSED = ("queries", "strict_bounds", "max_rate", "eval_queries", "noise_repeats", "eval_targets")
GMP_UNUSED = ("fit_steps", "memory_depth")  # the GMP predistorter is fitted by least squares, K/M fixed
PYTHON = "passed to hwloop.train"  # the source of options set from Python


def spell(name: str, where: str = "") -> str:
    """An option as its user wrote it: ``--fit-steps`` on the command line, ``fit_steps`` in Python."""
    return name if where.startswith("passed to hwloop.") else "--" + name.replace("_", "-")


def refuse_unused(given: Collection[str] | Mapping[str, str], names: Iterable[str], why: str) -> None:
    """A usage error naming every option of ``names`` in ``given``, why it would not act, and
    where each came from (``given`` maps an option to its source, e.g. "given in config file c.toml")."""
    where = given if isinstance(given, Mapping) else {}
    used = [n for n in names if n in given]
    if not used:
        return
    groups: dict[str, list[str]] = {}
    for n in used:
        groups.setdefault(where.get(n, ""), []).append(n)
    flags = ", ".join(spell(n, where.get(n, "")) for n in used)
    if list(groups) == [""]:
        origin = ""
    elif len(groups) == 1:
        origin = f" ({next(iter(groups))})"
    else:
        parts = [f"{', '.join(spell(n, src) for n in ns)} {src or 'given'}" for src, ns in groups.items()]
        origin = f" ({'; '.join(parts)})"
    raise UsageError(f"{flags} would not act: {why}{origin}")


def check_options(
    given: Collection[str] | Mapping[str, str],
    *,
    signal: bool,
    offline: bool,
    inverse: str,
    hold: bool,
    stateful: bool | None = None,
    requested: str = "auto",
    cfr: str = "none",
    init_from: bool = False,
) -> None:
    """Refuse every option the user gave that would not act: no option is silently dropped.

    ``given`` holds the option names the user set (on the command line, in the
    environment, in a config file, or away from their defaults in Python), or
    maps each to where it came from, so the refusal can say. ``stateful`` is
    None before the device is open: the checks that need the device run again
    once it is, still before anything is sent. `choose` refuses the
    combinations of the options that pick a strategy (``--strategy``,
    ``--signal``, ``--init-from``, ``--hold``, pairs, ``--inverse``); this
    refuses the settings the chosen one never reads.
    """

    def refuse(names: tuple[str, ...], why: str) -> None:
        refuse_unused(given, names, why)

    if not signal:
        refuse(SIGNAL_ONLY, "they shape and score the target signal, and there is no --signal")
    else:
        if "eval_signal" in given:
            refuse(("holdout",), "--eval-signal scores the predistorter, all of --signal trains")
        if cfr == "none":
            refuse(("cfr_papr",), "it is the target of --cfr clip|window, and --cfr is none")
        refuse(
            ("eval_targets",),
            "a signal is scored on a stretch of it, not on sampled targets (--eval-queries sets its length)",
        )
    if signal and inverse in ("auto", "gmp"):
        refuse(
            GMP_UNUSED,
            "a signal's GMP predistorter has no optimizer steps or memory depth (or choose "
            "--inverse tapped|gru)",
        )
    if offline:
        refuse(OFFLINE_UNUSED, "they govern device queries, and offline training sends none")
        refuse(("memory_depth",), "offline training fits a memoryless inverse to the pairs")
        if inverse == "tapped":
            raise UsageError("--inverse tapped is for a device with memory; offline training has none")
    if not hold:
        refuse(("hold_mechanism",), "it says how --hold keeps outputs, and there is no --hold")
    if offline:
        refuse(("mask",), "offline training fits the pairs without a connection mask")
    elif hold or init_from:
        refuse(
            ("mask",),
            "--init-from starts from the earlier run's inverse and surrogate, whose connections are "
            "already set",
        )
    if inverse == "gru":
        refuse(("memory_depth",), "the GRU inverse carries its own state; it is the tapped inverse's depth")
    if stateful is False:
        refuse(("memory_depth",), "the device has no memory")
        if inverse == "tapped":
            raise UsageError("--inverse tapped is for a device with memory; this one has none")


def check_eval_options(given: Collection[str] | Mapping[str, str], *, signal: bool) -> None:
    """``hwloop eval``'s options that would not act: a signal's gain and band without one, a count
    of sampled targets with one."""
    if not signal:
        refuse_unused(given, ("gain", "fs", "bw"), "they scale and score a signal, and there is no --signal")
    else:
        refuse_unused(
            given,
            ("eval_targets",),
            "a signal is scored on a stretch of it, not on sampled targets (--eval-queries sets its length)",
        )


def run_strategy(name: str, ctx: Context) -> Outcome:
    """Import strategy ``name``'s module and spend ``ctx.dev``'s budget on it."""
    entry = STRATEGIES[name]
    module = importlib.import_module(entry.module)
    return module.train(ctx)
