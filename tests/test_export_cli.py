"""``hwloop export`` and ``hwloop eval --exported`` on bad input: one line on stderr, exit 2."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from export_fixtures import cli, cli_json, trained

from hwloop.cli import cli as group

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(args: list[str], *needle: str) -> None:
    res = CliRunner().invoke(group, args)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert len(lines) == 1 and lines[0].startswith("hwloop: error: "), res.stderr
    for n in needle:
        assert n in lines[0], lines[0]


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
        "16 (float16) or 8 (int8)",
    )
    one_line_error(
        ["export", "--run", run, "--format", "tflite", "--io-bits", "8", "--out", str(tmp_path / "e")],
        "--io-bits",
    )


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
    one_line_error(["eval", "--run", run, "--device", dev, "--exported", str(g_out)], "2->2", "1->1")
    one_line_error(["eval", "--run", run, "--device", dev, "--exported", str(t_out)], "2 TFLite models")
    one_line_error(
        ["eval", "--run", run, "--device", dev, "--exported", str(tmp_path)], "not part of an hwloop export"
    )


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
