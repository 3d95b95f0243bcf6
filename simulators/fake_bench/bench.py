"""A whole fake RF bench: generator and analyser TCP servers behind one PA simulator.

    with FakeBench(pa="sim:pa_wh?seed=3", seed=0) as fb:
        Path("lab.toml").write_text(fb.toml())
        ...                              # hwloop train --device bench:lab.toml ...
        fb.generator.played              # everything that reached the amplifier
        fb.late_reply("analyser", 2.0)   # faults: late reply, lost link, overload

`hwloop serve-bench` runs one from the command line. The bench file it
writes is the CONTRACT of docs/scpi.md plus this driver's own keys (timeouts,
guard, periods). Delay, path gain and phase are drawn from ``seed`` unless
given; they are fixed for the bench's life, while every capture starts at a
new random sample (free-running).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwloop.simulators.fake_bench.analyser import FakeAnalyser
from hwloop.simulators.fake_bench.generator import FakeGenerator
from hwloop.simulators.fake_bench.path import PathModel
from hwloop.simulators.fake_bench.scpi import ScpiServer

PERSONALITIES = {"generic": ("generic", "generic"), "rs": ("rs_smw", "rs_fsw")}


@dataclass(frozen=True)
class BenchLimits:
    """The limits written into the bench file (docs/scpi.md's example values by default)."""

    full_scale_dbm: float = -8.0
    peak_dbm: float = -8.0
    rms_dbm: float = -15.0
    papr_db: float = 20.0
    max_samples: int = 1_000_000


class FakeBench:
    """Two SCPI servers on 127.0.0.1 (ephemeral ports unless given) and the path between them."""

    def __init__(
        self,
        pa: str = "sim:pa_wh?seed=3",
        *,
        seed: int = 0,
        dialect: str = "generic",
        fs: float = 800e6,
        host: str = "127.0.0.1",
        ports: tuple[int, int] = (0, 0),
        delay: float | None = None,
        gain_db: float | None = None,
        phase: float | None = None,
        noise_dbc: float = -75.0,
        limits: BenchLimits | None = None,
    ) -> None:
        if dialect not in PERSONALITIES:
            raise ValueError(f"unknown dialect {dialect!r} (known: {', '.join(PERSONALITIES)})")
        self.limits = limits or BenchLimits()
        self.fs = fs
        self.dialect = dialect
        self.path = PathModel(
            pa,
            self.limits.full_scale_dbm,
            seed,
            delay=delay,
            gain_db=gain_db,
            phase=phase,
            noise_dbc=noise_dbc,
        )
        self.generator = FakeGenerator(dialect=dialect, host=host, port=ports[0])
        try:
            self.analyser = FakeAnalyser(self.generator, self.path, dialect=dialect, host=host, port=ports[1])
        except BaseException:
            self.generator.close()
            raise

    # ------------------------------------------------------------ the bench file
    def toml(
        self, *, timeout_s: float = 0.5, log: str | None = None, guard: int = 256, periods: int = 4
    ) -> str:
        """A bench file for this bench: docs/scpi.md's keys, then the driver's own."""
        gen_p, ana_p = PERSONALITIES[self.dialect]
        lim = self.limits
        lines = [
            "[generator]",
            f'resource = "{self.generator.resource}"',
            f'personality = "{gen_p}"',
            f"timeout_s = {timeout_s}",
            "",
            "[analyser]",
            f'resource = "{self.analyser.resource}"',
            f'personality = "{ana_p}"',
            f"timeout_s = {timeout_s}",
            "",
            "[signal]",
            f"fs = {float(self.fs)!r}",
            f"full_scale_dbm = {lim.full_scale_dbm}",
            f"guard = {guard}",
            f"periods = {periods}",
            "",
            "[limits]",
            f"peak_dbm = {lim.peak_dbm}",
            f"rms_dbm = {lim.rms_dbm}",
            f"papr_db = {lim.papr_db}",
            f"max_samples = {lim.max_samples}",
        ]
        if log:
            lines += ["", "[interlock]", f'log = "{log}"']
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ faults
    def server(self, which: str) -> ScpiServer:
        if which not in ("generator", "analyser"):
            raise ValueError("which is 'generator' or 'analyser'")
        return self.generator if which == "generator" else self.analyser

    def late_reply(self, which: str, seconds: float) -> None:
        """The instrument's next reply comes ``seconds`` late, on the same connection."""
        self.server(which).late_reply(seconds)

    def lose_link(self, which: str) -> None:
        """Every open connection to the instrument is cut now (new ones are accepted)."""
        self.server(which).drop_links()

    def fault_at(self, which: str, header: str, fault: str, seconds: float = 2.0) -> None:
        """A fault when the instrument next receives a command starting with ``header``:
        ``late`` (its reply ``seconds`` late), ``lost_link`` (connections cut before it is handled)
        or ``overload`` (the analyser's next capture overloads)."""
        srv = self.server(which)
        actions = {
            "late": lambda: srv.late_reply(seconds),
            "lost_link": srv.drop_links,
            "overload": self.analyser.inject_overload,
        }
        if fault not in actions:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(actions)})")
        srv.fault_on(header, actions[fault])

    def overload(self) -> None:
        """The analyser's next capture reports an overload."""
        self.analyser.inject_overload()

    # ------------------------------------------------------------ life
    def close(self) -> None:
        self.analyser.close()
        self.generator.close()

    def __enter__(self) -> FakeBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
