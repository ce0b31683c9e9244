"""``dupbench find`` / ``encode`` / ``methods`` end to end, as a person would run them."""

from __future__ import annotations

import json
import subprocess
import sys

from dupbench.cli import main
from dupbench.records import Encodings


def test_find_reports_three_skips_and_the_planted_duplicates(planted_dir, tmp_path, capsys):
    out = tmp_path / "dups.json"
    groups = tmp_path / "groups.json"
    code = main(
        [
            "find",
            str(planted_dir["dir"]),
            "--method",
            "phash",
            "--threshold",
            "10",
            "--out",
            str(out),
            "--groups",
            str(groups),
            "--quiet",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "skipped 3" in err
    for bad in planted_dir["bad"]:
        assert bad in err
    dups = json.loads(out.read_text())
    found = {tuple(sorted((k, d[0]))) for k, v in dups.items() for d in v}
    assert found == planted_dir["pairs"]
    assert sorted(map(tuple, json.loads(groups.read_text()))) == sorted(planted_dir["pairs"])


def test_move_is_a_dry_run_unless_applied(planted_dir, tmp_path, capsys):
    trash = tmp_path / "trash"
    args = ["find", str(planted_dir["dir"]), "--quiet", "--workers", "1", "--move-to", str(trash)]
    main(args)
    assert "dry run" in capsys.readouterr().err and not trash.exists()
    main([*args, "--apply"])
    moved = sorted(p.name for p in trash.iterdir() if p.name != ".dupbench-journal.jsonl")
    assert moved == sorted(b for _, b in planted_dir["pairs"])
    assert all((planted_dir["dir"] / a).exists() for a, _ in planted_dir["pairs"])


def test_encode_writes_npz_and_json(planted_dir, tmp_path):
    assert (
        main(
            [
                "encode",
                str(planted_dir["dir"]),
                "-m",
                "dhash",
                "-p",
                "hash_size=16",
                "-o",
                str(tmp_path / "e.npz"),
                "-q",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    enc = Encodings.load(tmp_path / "e.npz")
    assert enc.size == 256 and enc.params["hash_size"] == 16 and len(enc.skipped) == 3
    main(["encode", str(planted_dir["dir"]), "-o", str(tmp_path / "e.json"), "-q"])
    assert all(len(h) == 16 for h in json.loads((tmp_path / "e.json").read_text()).values())


def test_console_entry_point_lists_methods():
    result = subprocess.run(
        [sys.executable, "-m", "dupbench", "methods"], capture_output=True, text=True, check=True
    )
    names = {line.split()[0] for line in result.stdout.splitlines()}
    assert {"phash", "dhash", "ahash", "whash", "file_digest", "pixel_digest"} <= names


def test_cli_refuses_bad_requests_before_doing_the_work(planted_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["encode", str(planted_dir["dir"]), "-m", "cnn", "-o", str(out)]) == 2
    assert "npz" in capsys.readouterr().err and not out.exists()
    assert main(["find", str(planted_dir["dir"]), "-t", "10.7", "-q"]) == 2
    assert "integer" in capsys.readouterr().err
