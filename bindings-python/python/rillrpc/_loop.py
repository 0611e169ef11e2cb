"""The bridge between the native parkers and an asyncio loop (asyncio or uvloop).

Each running loop gets one `Reactor`: a socket the loop watches with `add_reader`. Native
operations are tried synchronously first; only when one is not ready does a task park a
future here, and one wake-up resolves every future that became ready meanwhile.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, MutableMapping, Optional, Tuple

from ._native import Reactor

_reactors: MutableMapping[Any, Reactor]
try:
    _reactors = weakref.WeakKeyDictionary()
    _probe = asyncio.new_event_loop()
    _reactors[_probe] = Reactor()
    _probe.close()
    _reactors.clear()
    del _probe
except TypeError:  # a loop type without weak references
    _reactors = {}

_last: Optional[Tuple[Any, Reactor]] = None


def reactor() -> Tuple[asyncio.AbstractEventLoop, Reactor]:
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last[0] is loop:
        return last
    r = _reactors.get(loop)
    if r is None:
        r = Reactor()
        loop.add_reader(r.fileno(), r.drain)
        _reactors[loop] = r
    _last = (loop, r)
    return _last


async def park(native: Any, epoch: int) -> None:
    """Waits for the next wake of `native` after `epoch` (at once if one came already)."""
    loop, r = reactor()
    fut = loop.create_future()
    if native.park(fut, r, epoch):
        await fut
