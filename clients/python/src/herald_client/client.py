"""The clients: `Herald` and `AsyncHerald` for a tenant's backend (an API key),
`HeraldOperator` and `AsyncHeraldOperator` for the operator (the admin token). The calls are
`TenantCalls` and `OperatorCalls`; what differs here is only how they run (sync or async)
and the iterators that page by themselves."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Dict, Iterable, Iterator, List, Optional

import httpx

from ._api import OperatorCalls, TenantCalls, operation
from ._transport import AsyncTransport, Call, Retries, SyncTransport

__all__ = ["Herald", "AsyncHerald", "HeraldOperator", "AsyncHeraldOperator", "Retries"]


class _Frames:
    """Server-Sent Events frames from lines: `{"event", "data"}` with the data parsed."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: List[str] = []

    def line(self, line: str) -> Optional[Dict[str, Any]]:
        if line == "":
            frame = None
            if self.data:
                frame = {"event": self.event, "data": json.loads("\n".join(self.data))}
            self.event, self.data = "message", []
            return frame
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self.event = value
        elif field == "data":
            self.data.append(value)
        return None


class Herald(TenantCalls):
    """A tenant's backend, with one of its API keys:

    >>> herald = Herald("https://herald.example.com", api_key)
    >>> herald.publish({"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}})
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retries: Optional[Retries] = None,
        client: Optional[httpx.Client] = None,
        _herald_tenant: Optional[str] = None,
    ) -> None:
        self._transport = SyncTransport(
            url, api_key, herald_tenant=_herald_tenant, timeout=timeout, retries=retries, client=client
        )

    def _run(self, call: Call) -> Any:
        return self._transport.run(call)

    def history(
        self, user: str, *, topics: Optional[Iterable[str]] = None, after: Optional[str] = None, page_size: int = 100
    ) -> Iterator[Dict[str, Any]]:
        """Every event of `user`'s stream after `after`, oldest first, page by page."""
        topics = list(topics) if topics is not None else None
        while True:
            page = self.history_page(user, topics=topics, after=after, limit=page_size)
            yield from page["events"]
            after = page["next"]
            if after is None:
                return

    def deliveries(self, webhook_id: str, *, page_size: int = 50) -> Iterator[Dict[str, Any]]:
        """Every message sent to an endpoint, newest first, with its attempts."""
        before = None
        while True:
            page = self.deliveries_page(webhook_id, before=before, limit=page_size)
            yield from page["deliveries"]
            before = page["next"]
            if before is None:
                return

    @operation("GET /v1/tail")
    def tail(self) -> Iterator[Dict[str, Any]]:
        """The tenant's live tail: `{"event": "event" | "notice" | "dropped", "data"}` as it
        happens, until Herald ends it (a revoked key, a removed tenant) or you stop."""
        parser = _Frames()
        with self._transport.stream("/v1/tail") as response:
            if response.is_error:
                response.read()
                self._transport.run(Call("GET", "/v1/tail"))  # raises the error, as a call would
            for line in response.iter_lines():
                frame = parser.line(line)
                if frame is not None:
                    yield frame

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "Herald":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncHerald(TenantCalls):
    """`Herald` for asyncio: the same methods, awaited.

    >>> async with AsyncHerald("https://herald.example.com", api_key) as herald:
    ...     await herald.publish({"to": {"user": "alice"}, "data": "hi"})
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retries: Optional[Retries] = None,
        client: Optional[httpx.AsyncClient] = None,
        _herald_tenant: Optional[str] = None,
    ) -> None:
        self._transport = AsyncTransport(
            url, api_key, herald_tenant=_herald_tenant, timeout=timeout, retries=retries, client=client
        )

    def _run(self, call: Call) -> Any:
        return self._transport.run(call)

    async def history(
        self, user: str, *, topics: Optional[Iterable[str]] = None, after: Optional[str] = None, page_size: int = 100
    ) -> AsyncIterator[Dict[str, Any]]:
        topics = list(topics) if topics is not None else None
        while True:
            page = await self.history_page(user, topics=topics, after=after, limit=page_size)
            for event in page["events"]:
                yield event
            after = page["next"]
            if after is None:
                return

    async def deliveries(self, webhook_id: str, *, page_size: int = 50) -> AsyncIterator[Dict[str, Any]]:
        before = None
        while True:
            page = await self.deliveries_page(webhook_id, before=before, limit=page_size)
            for delivery in page["deliveries"]:
                yield delivery
            before = page["next"]
            if before is None:
                return

    @operation("GET /v1/tail")
    async def tail(self) -> AsyncIterator[Dict[str, Any]]:
        parser = _Frames()
        async with self._transport.stream("/v1/tail") as response:
            if response.is_error:
                await response.aread()
                await self._transport.run(Call("GET", "/v1/tail"))
            async for line in response.aiter_lines():
                frame = parser.line(line)
                if frame is not None:
                    yield frame

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> "AsyncHerald":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class HeraldOperator(OperatorCalls):
    """The operator, with the admin token: tenants, keys, limits, usage. `as_tenant(slug)`
    is a `Herald` acting as that tenant (the admin token with `Herald-Tenant`)."""

    def __init__(
        self,
        url: str,
        admin_token: str,
        *,
        timeout: float = 10.0,
        retries: Optional[Retries] = None,
        client: Optional[httpx.Client] = None,
    ) -> None:
        self._url, self._token, self._timeout, self._retries = url, admin_token, timeout, retries
        self._transport = SyncTransport(url, admin_token, timeout=timeout, retries=retries, client=client)

    def _run(self, call: Call) -> Any:
        return self._transport.run(call)

    def tenants(self, *, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        """Every tenant, in slug order, page by page."""
        after = None
        while True:
            page = self.tenants_page(after=after, limit=page_size)
            yield from page["tenants"]
            after = page["next"]
            if after is None:
                return

    def as_tenant(self, slug: str) -> Herald:
        return Herald(self._url, self._token, timeout=self._timeout, retries=self._retries, _herald_tenant=slug)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "HeraldOperator":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncHeraldOperator(OperatorCalls):
    """`HeraldOperator` for asyncio."""

    def __init__(
        self,
        url: str,
        admin_token: str,
        *,
        timeout: float = 10.0,
        retries: Optional[Retries] = None,
        client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._url, self._token, self._timeout, self._retries = url, admin_token, timeout, retries
        self._transport = AsyncTransport(url, admin_token, timeout=timeout, retries=retries, client=client)

    def _run(self, call: Call) -> Any:
        return self._transport.run(call)

    async def tenants(self, *, page_size: int = 100) -> AsyncIterator[Dict[str, Any]]:
        after = None
        while True:
            page = await self.tenants_page(after=after, limit=page_size)
            for tenant in page["tenants"]:
                yield tenant
            after = page["next"]
            if after is None:
                return

    def as_tenant(self, slug: str) -> AsyncHerald:
        return AsyncHerald(self._url, self._token, timeout=self._timeout, retries=self._retries, _herald_tenant=slug)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> "AsyncHeraldOperator":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
