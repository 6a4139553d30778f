"""The distribution's version is the npm package's: package.json is the one place it is kept.

Read from the sidecar staged by `npm run wheel` (python/parsl_sidecar_cli/sidecar/), else from
the checkout's package.json one directory up.
"""

import json
from pathlib import Path

from setuptools import setup

here = Path(__file__).resolve().parent
staged = here / "parsl_sidecar_cli" / "sidecar" / "package.json"
for candidate in (staged, here.parent / "package.json"):
    if candidate.is_file():
        version = json.loads(candidate.read_text())["version"]
        break
else:
    raise SystemExit(f"no package.json in {here.parent} nor a staged sidecar: run `npm run wheel`")

setup(version=version)
