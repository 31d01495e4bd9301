"""How a call reaches Herald: one request, sent again where that is safe.

A call is described once (`Call`) and run by either transport — `SyncTransport` (httpx.Client)
or `AsyncTransport` (httpx.AsyncClient) — so that `Herald` and `AsyncHerald` share every
method. Both decide alike (`_next_wait`): a 429 is always sent again (Herald did nothing),
a 503, a timeout or a lost connection only when the call is safe to repeat (reads, and
publishes, which carry an Idempotency-Key); Herald's `Retry-After` is honoured, otherwise
the wait doubles from `Retries.first_wait`, with jitter, up to `Retries.attempts` in all.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import httpx

from .errors import HeraldError


@dataclass
class Retries:
    """How hard a call tries: at most `attempts` sends in all; waits start at `first_wait`
    seconds and double; a `Retry-After` longer than `longest_wait` is not waited for (the
    error is raised with `retry_after` set)."""

    attempts: int = 4
    first_wait: float = 0.25
    longest_wait: float = 30.0


@dataclass
class Call:
    method: str
    path: str
    params: Optional[Dict[str, Any]] = None
    json: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    #: Whether sending it again after a 503 or a lost connection cannot do it twice.
    repeatable: bool = True
    #: What the caller gets from the JSON answer (None for 204).
    then: Callable[[Any], Any] = lambda body: body


def _next_wait(call: Call, error: HeraldError, attempt: int, retries: Retries) -> Optional[float]:
    """Seconds to wait before sending `call` again after `error`, or None: raise it."""
    if attempt >= retries.attempts:
        return None
    # A 429 did nothing; a key still in flight is a first attempt whose answer was lost.
    again = error.status == 429 or error.code == "idempotency_key_in_flight" or (
        call.repeatable and (error.status == 503 or error.status is None)
    )
    if not again:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= retries.longest_wait else None
    wait = retries.first_wait * 2 ** (attempt - 1)
    return min(wait, retries.longest_wait) * (0.5 + random.random() / 2)


def _retry_after(response: httpx.Response) -> Optional[float]:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _outcome(call: Call, response: httpx.Response) -> Any:
    """The call's result, or the HeraldError the answer is."""
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = None
    if response.is_success:
        return call.then(body)
    raise HeraldError.from_answer(response.status_code, body, _retry_after(response))


def _transport_error(error: Exception) -> HeraldError:
    if isinstance(error, httpx.TimeoutException):
        return HeraldError(None, "timeout", f"Herald did not answer in time: {error}")
    return HeraldError(None, "unreachable", f"Herald could not be reached: {error}")


def _client_settings(url: str, credential: str, herald_tenant: Optional[str], timeout: float) -> Dict[str, Any]:
    """What an httpx client (sync or async) is made with."""
    headers = {"Authorization": f"Bearer {credential}", "User-Agent": "herald-client-python"}
    if herald_tenant:
        headers["Herald-Tenant"] = herald_tenant
    return {"base_url": url.rstrip("/"), "timeout": timeout, "headers": headers}


class SyncTransport:
    def __init__(
        self,
        url: str,
        credential: str,
        *,
        herald_tenant: Optional[str] = None,
        timeout: float = 10.0,
        retries: Optional[Retries] = None,
        client: Optional[httpx.Client] = None,
    ) -> None:
        self.retries = retries or Retries()
        self.client = client or httpx.Client(**_client_settings(url, credential, herald_tenant, timeout))

    def run(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.client.request(
                    call.method, call.path, params=call.params, json=call.json, headers=call.headers
                )
                return _outcome(call, response)
            except HeraldError as error:
                failure = error
            except httpx.TransportError as error:
                failure = _transport_error(error)
            wait = _next_wait(call, failure, attempt, self.retries)
            if wait is None:
                raise failure
            time.sleep(wait)

    def stream(self, path: str) -> Any:
        return self.client.stream("GET", path, timeout=httpx.Timeout(None, connect=10.0))

    def close(self) -> None:
        self.client.close()


class AsyncTransport:
    def __init__(
        self,
        url: str,
        credential: str,
        *,
        herald_tenant: Optional[str] = None,
        timeout: float = 10.0,
        retries: Optional[Retries] = None,
        client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.retries = retries or Retries()
        self.client = client or httpx.AsyncClient(**_client_settings(url, credential, herald_tenant, timeout))

    async def run(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.request(
                    call.method, call.path, params=call.params, json=call.json, headers=call.headers
                )
                return _outcome(call, response)
            except HeraldError as error:
                failure = error
            except httpx.TransportError as error:
                failure = _transport_error(error)
            wait = _next_wait(call, failure, attempt, self.retries)
            if wait is None:
                raise failure
            await asyncio.sleep(wait)

    def stream(self, path: str) -> Any:
        return self.client.stream("GET", path, timeout=httpx.Timeout(None, connect=10.0))

    async def close(self) -> None:
        await self.client.aclose()
