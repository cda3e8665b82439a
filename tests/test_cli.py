"""The CLI is a thin layer: ingest + ls on real files, clear errors for bad input."""

from __future__ import annotations

from downstream.cli import main


def test_cli_ingest_then_ls(shared_data, tmp_path, capsys):
    rc = main(["ingest", str(shared_data / "lm-eval-samples" / "pythia-14m"), "--store",
               str(tmp_path / "st"), "--run", "pythia-14m", "--step", "143000", "--params", "1.4e7",
               "--tokens", "3e11", "-q"])
    assert rc == 0
    assert main(["ls", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    assert "metabench_arc_secondary" in out and "step143000" in out


def test_cli_reports_bad_path_without_traceback(tmp_path, capsys):
    rc = main(["ingest", str(tmp_path / "missing"), "--store", str(tmp_path / "st"), "--run", "r"])
    assert rc == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_package_root_exposes_the_public_api():
    import downstream as ds

    for name in ds.__all__:
        assert getattr(ds, name) is not None
