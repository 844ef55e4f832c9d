"""A sandbox with the {"/workspace": "name"} shorthand (the volume is created if missing), a
command streamed as it runs, one in the background, and a volume hot-plugged while it runs.

    /usr/bin/python3 packages/python/examples/sandbox_volumes.py
"""
import sys

from cairn import Cairn

cairn = Cairn()  # CAIRN_URL, CAIRN_API_KEY, CAIRN_PROJECT
with cairn.sandboxes.create(volumes={"/workspace": "my_project"}) as sandbox:
    sandbox.cwd("/workspace")
    r = sandbox.exec("for i in 1 2 3; do echo step $i; done; date > last-run.txt", on_stdout=sys.stdout.write)
    print("exit code", r.exit_code)

    job = sandbox.exec("sleep 1; ls /workspace", background=True)
    print("background:", job.wait()["stdout"].split())

    cache = cairn.volumes.from_name("shared-cache", create_if_missing=True, access_mode="ReadWriteMany")
    sandbox.attach(cache.mount("/cache"))
    sandbox.exec("echo warmed > /cache/state")
    sandbox.detach("/cache")
    print("cache says", cache.files.read("/state").strip())

print("kept in the volume:", cairn.volumes.get("my_project").files.read("/last-run.txt").strip())
