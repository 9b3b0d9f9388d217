"""The bench's page visitors: one signed-in employee asking for the employees list on N
connections as fast as the page answers, until SIGTERM; the number answered goes to a file.
    webload.py PORT CONNECTIONS COUNT_FILE"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp


async def main(port: int, connections: int, count_file: Path) -> None:
    url = f"http://127.0.0.1:{port}"
    served = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # cookies for 127.0.0.1
        form = await (await session.get(url + "/login")).text()
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signed = await session.post(url + "/login", data={"name": "bench", "password": "bench-password-123",
                                                          "csrf_token": token})
        assert signed.status in (200, 303), f"could not sign in to the page: {signed.status}"

        async def hammer() -> None:
            nonlocal served
            while True:
                async with session.get(url + "/api/employees") as r:
                    await r.read()
                    served += r.status == 200

        tasks = [asyncio.create_task(hammer()) for _ in range(connections)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    count_file.write_text(str(served))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])))
