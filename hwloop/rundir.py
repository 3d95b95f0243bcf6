"""The run directory: its files, the plan a run follows, its metrics and evaluation record.

Run directory (CONTRACT): ``config.toml`` (everything needed to repeat the
run), ``queries.sqlite`` (the query log), ``inverse.keras`` (the trained
inverse), ``metrics.json``; ``report.png`` comes from ``hwloop report``.
Beside them: ``device.json`` (the device's info, read by `load_inverse`),
``surrogate.keras`` (when the strategy learned one) and ``evaluation.npz``
(the closed loop evaluation measured: targets, inputs, answers).

`TrainOptions` is the one spelling of a run's settings: the CLI's train
options are generated from its fields (their metadata holds the help text
and limits), config.toml is written from it and read back into it, and a
resumed run compares what the user gave again against it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.config import read_toml, write_toml
from hwloop.device import DeviceInfo
from hwloop.errors import RunDirError, UsageError, spelled

CONFIG_FILE = "config.toml"
LOG_FILE = "queries.sqlite"
METRICS_FILE = "metrics.json"
EVAL_FILE = "eval.json"
EVALUATION_FILE = "evaluation.npz"
SURROGATE_FILE = "surrogate.keras"
DEFAULT_QUERIES = 10_000


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A plan field whose metadata makes its CLI option (help, min, choices, flag, hidden)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class TrainOptions:
    """Settings of a run beyond device, strategy, budget and seed."""

    fit_steps: int = _opt(8000, "Optimizer steps per fit.", min=1)
    eval_queries: int | None = _opt(
        None,
        "Device queries for the closed-loop evaluation [default: with the noise floor, at most the "
        "training budget, capped at 4000].",
        min=32,
    )
    noise_repeats: int | None = _opt(
        None,
        "Inputs asked twice for the noise floor [default: a quarter of the evaluation budget, 16..256].",
        min=2,
    )
    eval_targets: int | None = _opt(
        None, "Exactly this many closed-loop targets (instead of --eval-queries).", min=16
    )
    strict_bounds: bool = _opt(
        False, "Refuse, rather than clip, proposals outside the safe range.", flag=True
    )
    memory_depth: int = _opt(
        5, "Past target samples the inverse sees, for a device with memory.", min=0, max=64
    )
    inverse: str = _opt(
        "auto",
        "Inverse family for a device with memory: tapped (delay-line MLP), gru (recurrent) or gmp "
        "(polynomial predistorter, with --signal); auto: gmp with --signal, else tapped.",
        choices=("auto", "tapped", "gru", "gmp"),
    )
    max_rate: float | None = _opt(
        None, "At most this many device queries per second (fragile hardware).", min_open=0.0
    )
    from_log: str | None = _opt(
        None, "Also learn from an earlier run's logged pairs; without --device, train offline.", path="dir"
    )
    from_data: str | None = _opt(
        None,
        "Also learn from measured pairs (NPZ arrays x, y or CSV x0..,y0..); without --device, offline.",
        path="file",
    )
    mask: list[list[int]] | None = _opt(
        None, ".npy (in_dim, out_dim) of 0/1: which device inputs can affect which outputs.", path="file"
    )
    hold: list[int] | None = _opt(None, "Inverse outputs to keep exactly as in --init-from, e.g. 0,2.")
    hold_mechanism: str = _opt("masked_loss", "How held outputs are kept.", choices=("masked_loss",))
    init_from: str | None = _opt(
        None,
        "Earlier run to start from: calibrate a new unit from its inverse "
        "and surrogate (or, with --hold, recalibrate some outputs).",
        path="dir",
    )

    signal: str | None = _opt(
        None,
        "The signal to linearise (DPD): an I/Q file (CSV with header I,Q, or NPZ) or ofdm:bw=..,fs=..,n=..",
    )
    gain: float = _opt(
        1.0, "Targets are the signal times this gain, in the device's output units.", min_open=0.0
    )
    fs: float | None = _opt(
        None,
        "Sample rate of the signal in Hz (for ACPR/EVM) [default: the signal's own (an NPZ's fs, the "
        "input_signal_fs of a spec.json beside a CSV, an ofdm: spec's fs), else 800e6].",
        min_open=0.0,
    )
    bw: float = _opt(200e6, "Channel bandwidth in Hz (ACPR: adjacent channels of this width).", min_open=0.0)
    holdout: float = _opt(
        0.2,
        "Fraction of --signal (its end) held out of training and scored after it; 0: score on the "
        "training signal (not with --eval-signal).",
        min=0.0,
        max_open=1.0,
    )
    eval_signal: str | None = _opt(
        None, "Score the predistorter on this signal (then all of --signal trains), same forms as --signal."
    )
    skip_reference: bool = _opt(
        False, "Do not measure the signal without predistortion (the no-DPD reference).", flag=True
    )
    cfr: str = _opt(
        "none",
        "Crest factor reduction of the signal before predistortion: clip (clipping and filtering) or "
        "window (peak windowing), to --cfr-papr; its EVM cost goes to metrics.json.",
        choices=("none", "clip", "window"),
    )
    cfr_papr: float = _opt(8.0, "Target peak-to-average power ratio of --cfr, dB.", min_open=0.0)

    def __post_init__(self) -> None:
        if self.eval_targets is not None and self.eval_queries is not None:
            raise UsageError("give --eval-queries or --eval-targets, not both")
        if not 0 <= self.holdout < 1:
            raise UsageError(f"--holdout is a fraction in [0, 1), got {self.holdout}")
        if self.max_rate is not None and self.max_rate <= 0:
            raise UsageError(f"--max-rate must be positive, got {self.max_rate}")
        if self.mask is not None:
            arr = np.asarray(self.mask, dtype=np.float64)
            if arr.ndim != 2 or not np.isin(arr, (0.0, 1.0)).all():
                raise UsageError(
                    f"a connection mask is a 2-D array of 0 and 1 only, got {arr.tolist()!r:.80}"
                )
            object.__setattr__(self, "mask", arr.astype(int).tolist())
        if self.hold is not None:
            if not self.hold or any(int(h) != h or h < 0 for h in self.hold):
                raise UsageError(f"--hold takes output indices like 0,2, got {self.hold!r}")
            object.__setattr__(self, "hold", sorted({int(h) for h in self.hold}))

    def mask_for(self, info: DeviceInfo) -> np.ndarray | None:
        """The connection mask as float32 (in_dim, out_dim), checked against the device."""
        if self.mask is None:
            return None
        arr = np.asarray(self.mask, dtype=np.float32)
        if arr.shape != (info.in_dim, info.out_dim):
            raise UsageError(
                f"a connection mask for this device is a ({info.in_dim}, {info.out_dim}) array of 0/1, "
                f"got shape {arr.shape}"
            )
        return arr

    def replace(self, **changes: Any) -> TrainOptions:
        return TrainOptions(**{**asdict(self), **changes})


def option_fields() -> list[Any]:
    """The plan's option fields with their defaults and CLI metadata."""
    return [f for f in fields(TrainOptions) if f.default is not MISSING]


@dataclass(frozen=True)
class RunPlan:
    """Everything that determines a run; written to config.toml, read back on resume."""

    device: str
    strategy: str
    queries: int
    seed: int
    options: TrainOptions

    def settings(self) -> dict[str, Any]:
        """Every setting by its option name, for comparison with what a user gave again."""
        return {"strategy": self.strategy, "queries": self.queries, "seed": self.seed, **asdict(self.options)}

    def check_same(self, given: dict[str, Any], run: Path) -> None:
        """A resumed run keeps its settings: a different value given again is a usage error."""
        recorded = self.settings()
        for name, value in given.items():
            if name in recorded and value != recorded[name]:
                opt = "--" + name.replace("_", "-")
                raise UsageError(
                    f"{run} was started with {opt} {_show(recorded[name])}; drop {opt} or give the same "
                    f"value ({_show(value)} differs) to resume"
                )


def _show(v: Any) -> str:
    return "(not set)" if v is None else str(v)


class RunDir:
    """One run's directory and the names of what it holds."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def new(cls, name: str) -> RunDir:
        return cls(Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}")

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def has_plan(self) -> bool:
        """True once the run wrote its plan: only then is there anything to resume."""
        return (self.path / CONFIG_FILE).is_file()

    def check_fresh(self) -> None:
        if self.log_path.exists():
            raise UsageError(
                f"{self.path} already holds a run; "
                + spelled(
                    "choose another --out or add --resume", "choose another run_dir or pass resume=True"
                )
            )

    def check_device(self, info: DeviceInfo) -> None:
        """A run is bound to its device: refuse, before anything is sent, a device whose
        identity (INFO: name, dimensions, range, envelope, firmware) differs from the recorded one."""
        path = self.path / CONFIG_FILE
        recorded = read_toml(path).get("device_info") if path.is_file() else None
        if not recorded:
            return
        try:
            before = DeviceInfo(**recorded).identity()
        except (TypeError, ValueError) as exc:
            raise RunDirError(f"{path}: device_info is incomplete or corrupted ({exc})") from None
        now = info.identity()
        if before != now:
            diff = ", ".join(
                f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in now if before.get(k) != now[k]
            )
            raise UsageError(
                f"{self.path} was trained on another device ({diff}); a run is bound to its device: "
                + spelled(
                    "resume it on that device or start a new --out",
                    "resume it on that device or start a new run_dir",
                )
            )

    def write_plan(self, plan: RunPlan, info: dict, parent: str | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        opts = {k: v for k, v in asdict(plan.options).items() if v is not None}
        data = {"device": plan.device, "strategy": plan.strategy, "queries": plan.queries, "seed": plan.seed}
        data |= {"parent_run": parent} if parent else {}
        _atomic(
            self.path / CONFIG_FILE, lambda p: write_toml(p, {**data, "options": opts, "device_info": info})
        )

    def read_plan(self) -> RunPlan:
        path = self.path / CONFIG_FILE
        if not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} does not exist")
        if not path.is_file():
            raise RunDirError(f"{self.path} holds no config.toml: not a run directory, nothing to resume")
        cfg = read_toml(path)
        try:
            known = {f.name for f in fields(TrainOptions)}
            opts = TrainOptions(**{k: v for k, v in cfg.get("options", {}).items() if k in known})
            return RunPlan(
                str(cfg["device"]), str(cfg["strategy"]), int(cfg["queries"]), int(cfg["seed"]), opts
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{path}: incomplete or corrupted ({exc})") from None

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.path / METRICS_FILE, metrics)

    def write_train_metrics(self, metrics: dict[str, Any]) -> None:
        """Training's metrics.json, written anew (a resume too), keeping ``hwloop eval``'s latest
        figures under ``eval`` as eval.json holds them: a resume replays the same inverse."""
        try:
            figures = self.read_eval()
        except RunDirError:  # an unreadable eval.json is eval's to rewrite, not training's to fail on
            figures = None
        self.write_metrics({**metrics, "eval": figures} if figures is not None else metrics)

    def write_eval(self, figures: dict[str, Any]) -> None:
        """``hwloop eval``'s figures, apart from training's: the latest in eval.json and under
        metrics.json's ``eval`` key; every other key of metrics.json stays training's."""
        write_json_atomic(self.path / EVAL_FILE, figures)
        metrics = self.read_metrics()
        if metrics is not None:
            self.write_metrics({**metrics, "eval": figures})

    def read_eval(self) -> dict[str, Any] | None:
        return read_json_object(self.path / EVAL_FILE)

    def read_metrics(self) -> dict[str, Any] | None:
        return read_json_object(self.path / METRICS_FILE)

    def save_evaluation(
        self, targets: np.ndarray, inputs: np.ndarray, outputs: np.ndarray, no_dpd: np.ndarray | None = None
    ) -> None:
        """The closed loop evaluation measured, for the report: t, M(t) and F(M(t)); for a
        signal also the output without predistortion."""
        arrays = {"targets": targets, "inputs": inputs, "outputs": outputs}
        if no_dpd is not None:
            arrays["outputs_no_dpd"] = no_dpd
        _atomic(self.path / EVALUATION_FILE, lambda p: np.savez(p, **arrays))

    def load_evaluation(self) -> dict[str, np.ndarray] | None:
        path = self.path / EVALUATION_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k], np.float64) for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise RunDirError(f"{path}: not a readable evaluation record ({exc})") from None


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file of a run (metrics.json, device.json): None if absent, else an object."""
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise RunDirError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def _atomic(path: Path, write: Any) -> None:
    """Write ``path`` through a temporary file, so a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict) -> None:
    """A JSON object file written through a temporary file (metrics.json, farm.json)."""
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str)))


TRAIN_ARGS = ("strategy", "queries", "seed", "init_from", "mask", "hold")


def train_kwargs(train_options: dict) -> dict:
    """``hwloop.train`` keyword arguments from flat train options (a farm's):
    the ones ``train`` takes itself, the rest as its `TrainOptions`."""
    known = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(train_options) - known - set(TRAIN_ARGS))
    if unknown:
        raise UsageError(f"unknown train option(s) for a farm: {', '.join(unknown)}")
    direct = {k: v for k, v in train_options.items() if k in TRAIN_ARGS and v is not None}
    rest = {k: v for k, v in train_options.items() if k in known and k not in TRAIN_ARGS}
    return {**direct, "options": TrainOptions(**rest)}
