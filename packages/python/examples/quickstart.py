"""The issue's seed flow: a named volume, a file written without a sandbox, read back inside one.

    export CAIRN_URL=http://127.0.0.1:7070 CAIRN_API_KEY=...
    /usr/bin/python3 packages/python/examples/quickstart.py
"""
from cairn import Sandbox, Volume

volume = Volume.from_name("team-data", create_if_missing=True)
volume.files.write("/hello.txt", "persistent\n")
with Sandbox.create(volumes=[volume.mount("/workspace/shared")]) as sandbox:
    print(sandbox.files.read("/workspace/shared/hello.txt").strip())
