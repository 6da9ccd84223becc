"""Finding Wren engines on the local network: `wren serve --advertise` announces `_wren._tcp.local.` with mDNS/DNS-SD
(zeroconf), and a window's Settings -> Engine lists the ones it hears (EngineBrowser).

The announcement's TXT record says the model, whether a key is needed (`key=1`) and the API path (`path=/v1`); it
never carries the key. A server bound to one address announces that address on that interface; one bound to
0.0.0.0 announces every IPv4 address of the machine but loopback.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable

SERVICE = "_wren._tcp.local."


@dataclass(frozen=True)
class Found:
    """A Wren engine heard on the network."""
    name: str  # the instance name ("wren on board")
    url: str  # http://address:port
    model: str
    key_required: bool


def _interfaces(host: str):
    from zeroconf import InterfaceChoice

    return InterfaceChoice.All if host in ("0.0.0.0", "") else [host]


def _addresses(host: str) -> list[str]:
    if host not in ("0.0.0.0", ""):
        return [host]
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                out.append(ip.ip)
    return out


def check_host(host: str) -> None:
    """Announcing needs an IPv4 address to bind (0.0.0.0: all of them)."""
    try:
        if ipaddress.ip_address(host).version == 4:
            return
    except ValueError:
        pass
    raise ValueError(f"--advertise needs an IPv4 address to bind (not {host!r}): 0.0.0.0 or one address of this "
                     "machine")


class Advertiser:
    """Announces one server while started."""

    def __init__(self, host: str, port: int, model: str, key_required: bool, name: str | None = None):
        check_host(host)
        self.host, self.port, self.model, self.key_required = host, port, model, key_required
        self.name = name or f"wren on {socket.gethostname()} port {port}"
        self._zc = None
        self._info = None

    async def start(self) -> None:
        from zeroconf import ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf

        addresses = _addresses(self.host)
        if not addresses:
            raise OSError("this machine has no network address to announce")
        self._info = self._service(ServiceInfo, f"{self.name}.{SERVICE}", addresses)
        self._zc = AsyncZeroconf(interfaces=_interfaces(self.host))
        announced = await self._zc.async_register_service(self._info, allow_name_change=True)
        await announced  # the announcements are out: a browser started before hears it

    def _service(self, ServiceInfo, name: str, addresses: list[str]):
        return ServiceInfo(SERVICE, name, port=self.port, parsed_addresses=addresses,
                           server=f"{socket.gethostname()}.local.",
                           properties={"path": "/v1", "model": self.model[:200],
                                       "key": "1" if self.key_required else "0"})

    async def update_model(self, model: str) -> None:
        """The server switched its model: the announcement says the new one."""
        self.model = model
        if self._zc is None:
            return
        from zeroconf import ServiceInfo

        self._info = self._service(ServiceInfo, self._info.name, self._info.parsed_addresses())
        await (await self._zc.async_update_service(self._info))

    async def stop(self) -> None:
        if self._zc is not None:
            await self._zc.async_unregister_all_services()
            await self._zc.async_close()
            self._zc = None


def _found(info) -> Found | None:
    addresses = info.parsed_addresses()
    if not addresses or not info.port:
        return None
    props = {k.decode(errors="replace"): (v or b"").decode(errors="replace")
             for k, v in (info.properties or {}).items()}
    host = addresses[0]
    host = f"[{host}]" if ":" in host else host
    return Found(info.name.removesuffix("." + SERVICE), f"http://{host}:{info.port}", props.get("model", ""),
                 props.get("key") == "1")


class EngineBrowser:
    """Listens for Wren engines while started; on_change(list of Found) on the event loop's thread whenever one
    comes or goes."""

    def __init__(self, on_change: Callable[[list[Found]], None], interfaces: list[str] | None = None):
        self.on_change = on_change
        self.interfaces = interfaces
        self.found: dict[str, Found] = {}
        self._zc = None
        self._browser = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        from zeroconf import InterfaceChoice
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

        self._loop = asyncio.get_running_loop()
        self._zc = AsyncZeroconf(interfaces=self.interfaces or InterfaceChoice.All)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE, handlers=[self._changed])

    def _changed(self, zeroconf, service_type: str, name: str, state_change) -> None:
        from zeroconf import ServiceStateChange

        if state_change is ServiceStateChange.Removed:
            if self.found.pop(name, None) is not None:
                self.on_change(list(self.found.values()))
            return
        self._loop.call_soon_threadsafe(self._spawn, service_type, name)

    def _spawn(self, service_type: str, name: str) -> None:
        task = self._loop.create_task(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            return
        found = _found(info)
        if found is not None and self._zc is not None:
            self.found[name] = found
            self.on_change(list(self.found.values()))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            await self._zc.async_close()
            self._zc = None
