"""The command line: demo, evaluate and bench end to end (small settings); paths checked first; --version."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import initlab


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"initlab {initlab.__version__}"


def test_demo_end_to_end(tmp_path):
    png = tmp_path / "demo.png"
    r = run("demo", "--depth", "5", "--draws", "256", "--sigmas", "1e-5,0.5", "--output", str(png))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # The sigma = 1e-5 table: five layers whose pre-activation variance falls by 5 sigma^2 = 5e-10 each.
    block = out.split("N(0, 1e-05^2) (256 draws)")[1].split("->")[0]
    pre = [float(m) for m in re.findall(r"^\s+\d+\s+(\S+)", block, flags=re.M)]
    assert len(pre) == 5
    assert all(b < a * 1e-8 for a, b in zip(pre, pre[1:])), pre
    assert re.search(r"N\(0, 1e-05\^2\)\s.*vanishes", out)
    assert re.search(r"N\(0, 0.5\^2\)\s.*explodes", out)
    assert re.search(r"He \(Kaiming\) normal, relu gain\s.*keeps", out)
    assert re.search(r"Xavier \(Glorot\) normal\s.*vanishes", out)
    assert f"figure written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the command line in this process (no interpreter start-up): (status, stdout, stderr)."""
    from initlab.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_options_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "demo", "--depth", "3", "--width", "6", "--activation", "tanh", "--draws", "64", "--no-plot")
    assert code == 0, err
    assert "Tanh, 3 layers x 6 units" in out and "mean-field" in out and not list(tmp_path.iterdir())
    code, out, err = cli(capsys, "demo", "--activation", "swish", "--no-plot")
    assert code == 2 and "unknown activation 'swish'" in err
    with pytest.raises(SystemExit) as e:
        cli(capsys, "demo", "--sigmas", "a,b")
    assert e.value.code == 2


@pytest.mark.parametrize("command", ["demo", "evaluate"])
def test_bad_output_paths_fail_before_any_work(tmp_path, capsys, command):
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    (tmp_path / "d.png").mkdir()
    cases = {
        str(tmp_path / "missing" / "x.png"): "does not exist",
        str(afile / "x.png"): "is not a directory",
        str(tmp_path / "d.png"): "it is a directory",
        str(tmp_path / "x.docx"): "extension '.docx'",
    }
    for path, why in cases.items():
        code, out, err = cli(capsys, command, "--output", path)
        assert code == 2 and why in err and path in err, (path, err)
        assert out == ""  # nothing ran: no header, no table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "f.txt"]


def test_a_bad_path_fails_before_the_work_in_a_fresh_process(tmp_path):
    r = run("demo", "--output", str(tmp_path / "missing" / "x.png"))
    assert r.returncode == 2 and "does not exist" in r.stderr and r.stdout == ""


def test_evaluate_bad_json_path_and_both_errors_together(tmp_path, capsys):
    code, out, err = cli(capsys, "evaluate", "--output", str(tmp_path / "no" / "a.png"), "--json", str(tmp_path / "nope" / "r.json"))
    assert code == 2 and "a.png" in err and "r.json" in err and out == ""
    code, out, err = cli(capsys, "evaluate", "--json", str(tmp_path / "r.csv"))
    assert code == 2 and "extension '.csv'" in err


def test_a_name_without_extension_gets_png_and_the_printed_name_is_the_written_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "demo", "--depth", "3", "--draws", "32", "--sigmas", "0.5", "--output", "noext")
    assert code == 0, err
    assert "figure written to noext.png" in out
    assert [p.name for p in tmp_path.iterdir()] == ["noext.png"]


def test_evaluate_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    r = run("evaluate", "--inits", "normal:std=0.01", "xavier_normal", "--depth", "2", "--width", "16", "--seeds", "1",
            "--steps", "30", "--output", "ev", "--json", "res", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "figure written to ev.png" in r.stdout and "results written to res.json" in r.stdout
    assert "normal:std=0.01" in r.stdout and "test acc %" in r.stdout
    d = json.loads((tmp_path / "res.json").read_text())
    assert [x["init"] for x in d["results"]] == ["normal:std=0.01", "xavier_normal"] and d["config"]["steps"] == 30
    assert (tmp_path / "ev.png").read_bytes()[:4] == b"\x89PNG"
    bad = run("evaluate", "--inits", "xavier", "--no-plot", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown init(s) ['xavier']" in bad.stderr


def test_bench_runs_in_readme_units():
    r = run("bench", "--size", "4096", "--matrix", "16", "--repeat", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    for op in ("uniform", "normal", "trunc_normal"):
        assert re.search(rf"^{op}\s+Gs/s\s", r.stdout, flags=re.M)
    assert re.search(r"^orthogonal\s+ms\s", r.stdout, flags=re.M) and "GFLOP/s" in r.stdout


def test_console_script_entry_point():
    from initlab.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])


# --- issue 19, item 17 ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, why", [
    (["demo", "--draws", "0"], "--draws: expected an integer >= 1, got '0'"),
    (["bench", "--threads", "0"], "--threads: expected an integer >= 1, got '0'"),
    (["bench", "--size", "1.5"], "--size: expected an integer, got '1.5'"),
    (["bench", "--size", "1e6"], "--size: expected an integer, got '1e6'"),
    (["evaluate", "--seeds", "-1"], "--seeds: expected an integer >= 1, got '-1'"),
    (["evaluate", "--epochs", "0"], "--epochs: expected a finite number > 0, got '0'"),
])
def test_zero_negative_and_float_counts_are_refused_by_argparse(capsys, argv, why):
    """Item 17: --draws 0, --threads 0 and float sizes were accepted silently."""
    from initlab.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert why in capsys.readouterr().err


def test_output_directory_gets_the_default_name_inside(tmp_path):
    """Item 17: `-o somedir` silently wrote somedir.png beside the directory; now the figure (and
    the JSON) go into it under the default name."""
    from initlab.cli import _parser, _paths

    (tmp_path / "figs").mkdir()
    args = _parser().parse_args(["evaluate", "-o", str(tmp_path / "figs"), "--json", str(tmp_path / "figs")])
    fig, js = _paths(args)
    assert fig == str(tmp_path / "figs" / "initlab-evaluate.png")
    assert js == str(tmp_path / "figs" / "initlab-evaluate.json")
    args = _parser().parse_args(["demo", "-o", str(tmp_path / "figs")])
    assert _paths(args)[0] == str(tmp_path / "figs" / "initlab-demo.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"] and list((tmp_path / "figs").iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, where no one (root included) can create files")
def test_unwritable_directory_is_found_before_the_work():
    """Item 17: writability was judged by os.access, which says yes to root on a directory where
    creating a file fails (here /proc); the job then ran and died at the end. It is now tried."""
    from initlab.cli import check_output_path

    with pytest.raises(ValueError, match="not writable"):
        check_output_path("/proc/initlab-figure.png")
    with pytest.raises(ValueError, match="not writable"):
        check_output_path("/proc/initlab-results", default_suffix=".json", suffixes=(".json",), what="JSON")


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    """Item 17: Ctrl-C printed a traceback; now exit status 130 and one line."""
    import initlab.cli as cli_mod

    def interrupted(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_mod, "bench", interrupted)
    try:
        code = cli_mod.main(["bench", "--size", "16"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")
    err = capsys.readouterr().err
    assert code == 130 and err.strip() == "initlab bench: interrupted"


def test_huge_bench_size_is_a_clear_error(capsys):
    """Item 17: a huge --size traced back (MemoryError) instead of a clear error."""
    from initlab.cli import main

    try:
        code = main(["bench", "--size", str(2**55)])
    except MemoryError:
        pytest.fail("MemoryError escaped main()")
    err = capsys.readouterr().err
    assert code in (1, 2) and err.startswith("initlab bench: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and ("memory" in err or "GiB" in err), err
