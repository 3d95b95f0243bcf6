"""``hwloop export`` and ``hwloop eval --exported`` on bad input: one line on stderr, exit 2."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from export_fixtures import cli, cli_json, own_copy, trained

from hwloop.cli import cli as group

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(args: list[str], *needle: str) -> None:
    res = CliRunner().invoke(group, args)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert len(lines) == 1 and lines[0].startswith("hwloop: error: "), res.stderr
    for n in needle:
        assert n in lines[0], lines[0]


def _files_of(run: Path) -> dict[str, bytes]:
    """Every file of a run directory with its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_unknown_format_missing_run_and_bad_bits(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = str(trained("mlp", tmp_path_factory))
    one_line_error(["export", "--run", run, "--format", "vhdl", "--out", str(tmp_path / "a")], "'vhdl'")
    one_line_error(
        ["export", "--run", str(tmp_path / "nope"), "--format", "c", "--out", str(tmp_path / "b")],
        "does not exist",
    )
    one_line_error(
        ["export", "--run", run, "--format", "c", "--bits", "3", "--out", str(tmp_path / "c")],
        "--bits must be between 4 and 16",
    )
    one_line_error(
        ["export", "--run", run, "--format", "tflite", "--bits", "12", "--out", str(tmp_path / "d")],
        "float16 (--bits 16)",
        "(--weight-bits 8 --act-bits 16)",
    )
    one_line_error(
        ["export", "--run", run, "--format", "tflite", "--io-bits", "8", "--out", str(tmp_path / "e")],
        "--io-bits",
    )


def test_width_and_qat_options_that_would_not_act_are_refused(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run, gmp = str(trained("mlp", tmp_path_factory)), str(trained("gmp_pa_gmp", tmp_path_factory))
    base = ["export", "--run", run, "--format", "c", "--out"]
    one_line_error(
        [*base, str(tmp_path / "a"), "--weight-bits", "17"], "--weight-bits must be between 4 and 16"
    )
    one_line_error([*base, str(tmp_path / "b"), "--act-bits", "3"], "--act-bits must be between 4 and 16")
    one_line_error([*base, str(tmp_path / "c"), "--qat", "500"], "--qat needs --device")
    one_line_error([*base, str(tmp_path / "d"), "--device", "sim:rapp"], "--device needs --qat")
    one_line_error([*base, str(tmp_path / "e"), "--qat", "50", "--device", "sim:rapp"], "at least 200")
    one_line_error(
        ["export", "--run", gmp, "--format", "c", "--act-bits", "12", "--out", str(tmp_path / "f")],
        "--act-bits does not apply to a GMP",
    )
    qat_gmp = ["export", "--run", gmp, "--format", "c", "--qat", "500", "--device", "sim:pa_gmp?seed=1"]
    one_line_error(
        [*qat_gmp, "--out", str(tmp_path / "g")],
        "--qat tunes a memoryless MLP",
    )
    one_line_error(
        ["export", "--run", gmp, "--format", "coeffs", "--bits", "12", "--out", str(tmp_path / "h")],
        "no word width applies",
    )
    qat_tflite = ["export", "--run", run, "--format", "tflite", "--qat", "500", "--device", "sim:rapp"]
    for k, widths in enumerate([[], ["--bits", "16"], ["--weight-bits", "8", "--act-bits", "16"]]):
        one_line_error(
            [*qat_tflite, *widths, "--out", str(tmp_path / f"q{k}")],
            "--qat tunes the words of --format c, or of full int8 --format tflite (--bits 8)",
        )
    assert not any((tmp_path / n).exists() and any((tmp_path / n).iterdir()) for n in "abcdefgh")


def test_a_family_the_format_does_not_take(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    one_line_error(
        [
            "export",
            "--run",
            str(trained("mlp", tmp_path_factory)),
            "--format",
            "coeffs",
            "--out",
            str(tmp_path / "a"),
        ],
        "--format coeffs exports gmp inverses",
        "mlp",
    )
    one_line_error(
        [
            "export",
            "--run",
            str(trained("gmp_pa_gmp", tmp_path_factory)),
            "--format",
            "tflite",
            "--out",
            str(tmp_path / "b"),
        ],
        "--format tflite exports mlp, tapped",
        "gmp",
    )


def test_an_export_is_not_written_over_without_force(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = str(trained("mlp", tmp_path_factory))
    out = tmp_path / "x"
    first = cli_json("export", "--run", run, "--format", "c", "--out", str(out))
    one_line_error(["export", "--run", run, "--format", "c", "--out", str(out)], "--force")
    again = cli_json("export", "--run", run, "--format", "c", "--bits", "12", "--out", str(out), "--force")
    assert again["bits"] == 12 and again["hash8"] != first["hash8"]


def test_eval_refuses_a_changed_a_foreign_or_an_ambiguous_export(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run, gmp = str(trained("mlp", tmp_path_factory)), str(trained("gmp_pa_gmp", tmp_path_factory))
    dev = "sim:rapp?noise=1e-3&seed=0"
    c_out, g_out, t_out = tmp_path / "c", tmp_path / "g", tmp_path / "t"
    cli_json("export", "--run", run, "--format", "c", "--out", str(c_out))
    cli_json("export", "--run", gmp, "--format", "c", "--out", str(g_out))
    cli_json("export", "--run", run, "--format", "tflite", "--out", str(t_out))
    params = json.loads((c_out / "params.json").read_text())
    params["quant"]["mean_t"][0] += 1
    (c_out / "params.json").write_text(json.dumps(params))
    one_line_error(
        ["eval", "--run", run, "--device", dev, "--exported", str(c_out)], "SHA-256", "params.json"
    )
    one_line_error(
        ["eval", "--run", run, "--device", dev, "--exported", str(g_out)],
        f"is an export of run {Path(gmp).resolve()}, not of {Path(run).resolve()}",
    )
    one_line_error(["eval", "--run", run, "--device", dev, "--exported", str(t_out)], "3 TFLite models")
    one_line_error(
        ["eval", "--run", run, "--device", dev, "--exported", str(tmp_path)], "not part of an hwloop export"
    )


def test_an_export_of_another_run_or_inverse_is_refused_before_any_query(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Same dimensions, so only the manifest's provenance can tell: it names both runs, or both hashes;
    the device (a port that does not exist) is never opened and nothing is written into the run."""
    import keras

    run = own_copy("mlp", tmp_path_factory, tmp_path / "run")
    before = _files_of(run)
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)  # the same inverse, another run
    own, other = tmp_path / "own", tmp_path / "other"
    cli_json("export", "--run", str(twin), "--format", "c", "--out", str(other))
    cli_json("export", "--run", str(twin), "--format", "c", "--out", str(own))
    nowhere = "serial:///dev/hwloop-no-such-port"
    one_line_error(
        ["eval", "--run", str(run), "--device", nowhere, "--exported", str(other)],
        f"export of run {twin.resolve()}, not of {run.resolve()}",
    )
    assert _files_of(run) == before
    model = keras.models.load_model(twin / "inverse.keras", compile=False)  # the twin's inverse changes
    w = model.get_weights()
    model.set_weights([w[0] + 1e-3, *w[1:]])
    model.save(twin / "inverse.keras")
    twin_before = _files_of(twin)
    one_line_error(
        ["eval", "--run", str(twin), "--device", nowhere, "--exported", str(own)],
        "was exported from inverse.keras SHA-256",
        "export the run again",
    )
    assert _files_of(twin) == twin_before


@pytest.mark.parametrize("fmt", ["c", "coeffs"])
def test_a_gmp_export_of_another_run_is_refused_before_any_query(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, fmt: str
) -> None:
    """Whatever the format (the fixed-point C, the coefficients): the provenance is checked before
    the device is opened, with a signal to score on as with none."""
    run = own_copy("gmp_pa_gmp", tmp_path_factory, tmp_path / "run")
    before = _files_of(run)
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    other = tmp_path / "other"
    cli_json("export", "--run", str(twin), "--format", fmt, "--out", str(other))
    signal = ["--signal", "ofdm:bw=200e6,fs=800e6,n=4096,papr=8,seed=11", "--gain", "2", "--bw", "200e6"]
    for extra in ([], signal):
        one_line_error(
            [
                "eval",
                "--run",
                str(run),
                "--device",
                "serial:///dev/hwloop-no-such-port",
                "--exported",
                str(other),
                *extra,
            ],
            f"export of run {twin.resolve()}, not of {run.resolve()}",
        )
    assert _files_of(run) == before


def test_the_installed_command_prints_one_line_too(tmp_path: Path) -> None:
    code, out, err = cli(
        "export", "--run", str(tmp_path / "none"), "--format", "c", "--out", str(tmp_path / "o")
    )
    assert code == 2 and out == "" and err.strip().count("\n") == 0 and "does not exist" in err, err


def test_dpd_and_inverses_never_import_the_export_package() -> None:
    for folder in ("dpd", "inverses"):
        for path in (ROOT / "hwloop" / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                )
                assert not any(n.startswith("hwloop.export") for n in names), path
    doc = ast.get_docstring(ast.parse((ROOT / "hwloop" / "export" / "__init__.py").read_text())) or ""
    assert "May import" in doc
