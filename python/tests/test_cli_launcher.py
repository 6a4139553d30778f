"""The ``parsl-sidecar`` console script's launcher (parsl_sidecar_cli): the argv it execs."""

from __future__ import annotations

from pathlib import Path

import parsl_sidecar_cli
from parsl_sidecar_cli import command, node_flags, sidecar_script


def test_command_passes_the_flags_of_the_bins_shebang() -> None:
    script = sidecar_script()
    assert Path(script).read_text().startswith("#!/usr/bin/env -S node --max-semi-space-size=8\n")
    assert command() == [parsl_sidecar_cli.node_executable(), "--max-semi-space-size=8", script]


def test_node_flags_of_other_files(tmp_path: Path) -> None:
    cases = {
        "#!/usr/bin/env node\n": [],
        "#!/usr/bin/env -S python3 -u\n": [],
        "// --max-semi-space-size=8\n": [],
        "#!/bin/env -S node --a=1 --b\n": ["--a=1", "--b"],
    }
    for i, (text, flags) in enumerate(cases.items()):
        f = tmp_path / f"s{i}.js"
        f.write_text(text + "1;\n")
        assert node_flags(str(f)) == flags, text
    assert node_flags(str(tmp_path / "missing.js")) == []
