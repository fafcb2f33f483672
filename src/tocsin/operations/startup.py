"""Start-up hook (``STARTUP_HOOKS``): the position hub, the dispatch listener, CoT."""

from __future__ import annotations

import asyncio
import functools

from tocsin.core.runtime import Runtime


def on_startup(runtime: Runtime) -> None:
    from tocsin.operations import integrations
    from tocsin.operations.cot import get_cot
    from tocsin.operations.positions import get_hub

    hub = get_hub(runtime)
    try:
        hub.loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    runtime.bus.subscribe(functools.partial(integrations.on_dispatch_event, runtime))
    cot = get_cot(runtime)
    if cot.settings.port is not None:
        asyncio.get_running_loop().create_task(cot.start())
