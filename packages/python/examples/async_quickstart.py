"""The seed flow with asyncio: AsyncVolume and AsyncSandbox have the same methods, awaited.

    /usr/bin/python3 packages/python/examples/async_quickstart.py
"""
import asyncio

from cairn import AsyncCairn, AsyncSandbox, AsyncVolume


async def main() -> None:
    async with AsyncCairn() as cairn:
        volume = await AsyncVolume.from_name("team-data", create_if_missing=True, client=cairn)
        await volume.files.write("/hello.txt", "persistent\n")
        async with await AsyncSandbox.create(volumes=[volume.mount("/workspace/shared")], client=cairn) as sandbox:
            print((await sandbox.files.read("/workspace/shared/hello.txt")).strip())
            async for event in sandbox.exec_stream("echo streamed; exit 0"):
                print(event)


asyncio.run(main())
