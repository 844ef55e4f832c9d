"""Files without a sandbox: write and read streams, a resumable upload with progress, a
checkpoint, and watching for changes from a saved cursor.

    /usr/bin/python3 packages/python/examples/files_and_uploads.py
"""
import io
import os

from cairn import Volume

volume = Volume.from_name("team-data", create_if_missing=True)
files = volume.files

# Streams both ways: nothing is held whole in memory.
files.write("/logs/app.log", (f"line {i}\n".encode() for i in range(10_000)))
size = sum(len(piece) for piece in files.read_stream("/logs/app.log"))
print("app.log", size, "bytes")

# Resumable (tus): keep the URL, and a later process can finish an interrupted upload with it.
data = os.urandom(3 * 1024 * 1024)
result = files.upload(
    "/uploads/blob.bin",
    io.BytesIO(data),
    chunk_size=1024 * 1024,
    on_upload_url=lambda url: print("resume with", url),
    on_progress=lambda done, total: print(f"  {done}/{total}"),
)
assert files.read_bytes("/uploads/blob.bin") == data

cp = volume.checkpoints.create(name="after-upload")
print("checkpoint", cp["name"])

# Watch: first a ready message with a cursor; resume from any message's cursor later.
stream = files.watch("/inbox")
ready = next(stream)
files.write("/inbox/new.txt", "hi")
for message in stream:
    if message["type"] != "ready":
        print("change:", message["type"], message["path"])
        break
stream.close()
volume.checkpoints.delete("after-upload")
