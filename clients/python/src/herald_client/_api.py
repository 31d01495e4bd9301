"""Every call a tenant's backend and the operator make, written once for both clients.

Each method builds a `Call` and hands it to `self._run`: the sync clients run it and return
the result, the async ones return an awaitable of it. A method is marked with the API
operations it covers (`@operation("GET /v1/events")`); a test reads Herald's
`/openapi.json` and fails if any tenant-backend or operator operation is covered by no
method — that mark, next to the method, is the map.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import quote

from ._transport import Call

F = TypeVar("F", bound=Callable[..., Any])

Event = Mapping[str, Any]


def operation(*keys: str) -> Callable[[F], F]:
    """Marks a method as covering the API operations `keys` ("METHOD /path")."""

    def mark(method: F) -> F:
        method.__herald_operations__ = keys  # type: ignore[attr-defined]
        return method

    return mark


def _segment(value: str) -> str:
    return quote(value, safe="")


def _csv(values: Optional[Iterable[str]]) -> Optional[str]:
    return None if values is None else ",".join(values)


def _query(**values: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


class TenantCalls:
    """A tenant's backend: publishing, history, inboxes, presence, receipts, fallbacks,
    webhooks, its own tenant and usage. Results are Herald's JSON, as docs/api.md shows it."""

    _run: Callable[[Call], Any]

    @operation("POST /v1/events")
    def publish(
        self, events: Union[Event, Sequence[Event]], *, idempotency_key: Optional[str] = None
    ) -> Any:
        """Publishes one event (a dict) or several (a list, committed together in order);
        the answer's `events` (`{"id", "to", "type"}` per recipient stream). The call
        carries an Idempotency-Key — `idempotency_key`, or one made for this call — and
        every retry reuses it, so a retry never stores an event twice."""
        body: Any = dict(events) if isinstance(events, Mapping) else {"events": [dict(e) for e in events]}
        key = idempotency_key or f"hc-{uuid.uuid4()}"
        return self._run(
            Call("POST", "/v1/events", json=body, headers={"Idempotency-Key": key}, then=lambda a: a["events"])
        )

    @operation("GET /v1/events")
    def history_page(
        self,
        user: str,
        *,
        topics: Optional[Iterable[str]] = None,
        after: Optional[str] = None,
        before: Optional[str] = None,
        newest_first: bool = False,
        limit: Optional[int] = None,
    ) -> Any:
        """One page of what `user`'s stream would replay: `{"events", "next"}`."""
        params = _query(
            user=user,
            topics=_csv(topics),
            after=after,
            before=before,
            order="newest" if newest_first else None,
            limit=limit,
        )
        return self._run(Call("GET", "/v1/events", params=params))

    @operation("DELETE /v1/events/{id}/fallback")
    def cancel_fallback(self, event_id: str) -> Any:
        """Cancels what is pending of the fallback the publish of `event_id` carried."""
        return self._run(Call("DELETE", f"/v1/events/{_segment(event_id)}/fallback"))

    @operation("GET /v1/receipts")
    def receipts(self, user: str, ids: Sequence[str]) -> Any:
        """What happened to each event with `user`: `[{"id", "delivered_at", "seen_at",
        "read_at", "fallback"}]`, in the order asked (1–100 ids)."""
        params = {"user": user, "ids": ",".join(ids)}
        return self._run(Call("GET", "/v1/receipts", params=params, then=lambda a: a["receipts"]))

    @operation("GET /v1/inbox")
    def inbox(
        self,
        user: str,
        *,
        before: Optional[str] = None,
        limit: Optional[int] = None,
        unread_only: bool = False,
    ) -> Any:
        """A page of `user`'s inbox, newest first: `{"items", "unread", "next"}`."""
        params = _query(user=user, before=before, limit=limit, unread=True if unread_only else None)
        return self._run(Call("GET", "/v1/inbox", params=params))

    @operation("POST /v1/inbox/read")
    def mark_read(self, user: str, ids: Optional[Sequence[str]] = None, *, everything: bool = False) -> Any:
        """Marks items (or, `everything`, all up to now) read; the unread count after."""
        body: Dict[str, Any] = {"all": True} if everything else {"ids": list(ids or [])}
        return self._run(
            Call("POST", "/v1/inbox/read", params={"user": user}, json=body, then=lambda a: a["unread"])
        )

    @operation("POST /v1/inbox/unread")
    def mark_unread(self, user: str, ids: Sequence[str]) -> Any:
        """Marks items unread again; the unread count after."""
        return self._run(
            Call("POST", "/v1/inbox/unread", params={"user": user}, json={"ids": list(ids)}, then=lambda a: a["unread"])
        )

    @operation("GET /v1/presence")
    def presence(self, user: str) -> Any:
        """`{"user", "online", "streams", "last_seen_at"}`."""
        return self._run(Call("GET", "/v1/presence", params={"user": user}))

    @operation("POST /v1/presence")
    def presence_of(self, users: Sequence[str]) -> Any:
        """The presence of each of `users` (at most 1,000), in the order asked."""
        return self._run(Call("POST", "/v1/presence", json={"users": list(users)}, then=lambda a: a["users"]))

    @operation("POST /v1/webhooks")
    def create_webhook(
        self, url: str, events: Sequence[str] = ("*",), *, description: Optional[str] = None
    ) -> Any:
        """A new endpoint; its `secret` (`whsec_…`) is in this answer only."""
        body: Dict[str, Any] = {"url": url, "events": list(events)}
        if description is not None:
            body["description"] = description
        return self._run(Call("POST", "/v1/webhooks", json=body, repeatable=False))

    @operation("GET /v1/webhooks")
    def webhooks(self) -> Any:
        """The tenant's endpoints, without secrets."""
        return self._run(Call("GET", "/v1/webhooks", then=lambda a: a["webhooks"]))

    @operation("GET /v1/webhooks/{id}")
    def webhook(self, webhook_id: str) -> Any:
        return self._run(Call("GET", f"/v1/webhooks/{_segment(webhook_id)}"))

    @operation("PATCH /v1/webhooks/{id}")
    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: Optional[str] = None,
        events: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        disabled: Optional[bool] = None,
    ) -> Any:
        """Changes what is given (`disabled=False` enables it again); the endpoint after."""
        body = _query(url=url, description=description)
        if events is not None:
            body["events"] = list(events)
        if disabled is not None:
            body["disabled"] = disabled
        return self._run(Call("PATCH", f"/v1/webhooks/{_segment(webhook_id)}", json=body))

    @operation("DELETE /v1/webhooks/{id}")
    def delete_webhook(self, webhook_id: str) -> Any:
        return self._run(Call("DELETE", f"/v1/webhooks/{_segment(webhook_id)}"))

    @operation("POST /v1/webhooks/{id}/rotate-secret")
    def rotate_webhook_secret(self, webhook_id: str) -> Any:
        """A new secret (the old one signs too for 24 h)."""
        path = f"/v1/webhooks/{_segment(webhook_id)}/rotate-secret"
        return self._run(Call("POST", path, repeatable=False, then=lambda a: a["secret"]))

    @operation("POST /v1/webhooks/{id}/test")
    def test_webhook(self, webhook_id: str) -> Any:
        """Sends a `webhook.test` message; its message id."""
        path = f"/v1/webhooks/{_segment(webhook_id)}/test"
        return self._run(Call("POST", path, repeatable=False, then=lambda a: a["message_id"]))

    @operation("GET /v1/webhooks/{id}/deliveries")
    def deliveries_page(self, webhook_id: str, *, before: Optional[str] = None, limit: Optional[int] = None) -> Any:
        """A page of the messages sent to an endpoint, newest first: `{"deliveries", "next"}`."""
        params = _query(before=before, limit=limit)
        return self._run(Call("GET", f"/v1/webhooks/{_segment(webhook_id)}/deliveries", params=params))

    @operation("POST /v1/webhooks/{id}/deliveries/{message_id}/retry")
    def retry_delivery(self, webhook_id: str, message_id: str) -> Any:
        """Attempts a message again now, whatever its state."""
        path = f"/v1/webhooks/{_segment(webhook_id)}/deliveries/{_segment(message_id)}/retry"
        return self._run(Call("POST", path))

    @operation("GET /v1/tenant")
    def tenant(self) -> Any:
        """The tenant this client acts as."""
        return self._run(Call("GET", "/v1/tenant"))

    @operation("GET /v1/usage")
    def usage(self) -> Any:
        """The tenant's usage: today, this month, the last 30 days and 48 hours."""
        return self._run(Call("GET", "/v1/usage"))


class OperatorCalls:
    """The operator (the admin token): tenants, their keys and limits, usage."""

    _run: Callable[[Call], Any]

    @operation("POST /admin/tenants")
    def create_tenant(
        self,
        slug: str,
        *,
        name: Optional[str] = None,
        allowed_origins: Sequence[str] = (),
        retention: Optional[Mapping[str, Any]] = None,
        limits: Optional[Mapping[str, Any]] = None,
    ) -> Any:
        body: Dict[str, Any] = {"slug": slug, "allowed_origins": list(allowed_origins)}
        if name is not None:
            body["name"] = name
        if retention is not None:
            body["retention"] = dict(retention)
        if limits is not None:
            body["limits"] = dict(limits)
        return self._run(Call("POST", "/admin/tenants", json=body, repeatable=False))

    @operation("GET /admin/tenants")
    def tenants_page(self, *, after: Optional[str] = None, limit: int = 100) -> Any:
        """A page of tenants in slug order: `{"tenants", "next"}`."""
        return self._run(Call("GET", "/admin/tenants", params=_query(after=after, limit=limit)))

    @operation("GET /admin/tenants/{slug}")
    def get_tenant(self, slug: str) -> Any:
        return self._run(Call("GET", f"/admin/tenants/{_segment(slug)}"))

    @operation("PATCH /admin/tenants/{slug}")
    def update_tenant(self, slug: str, **changes: Any) -> Any:
        """Changes the fields given (`name`, `allowed_origins`, `retention`, `limits`)."""
        return self._run(Call("PATCH", f"/admin/tenants/{_segment(slug)}", json=changes))

    def set_limits(self, slug: str, **limits: Optional[int]) -> Any:
        """Sets the limits given (None: back to the server's default); the tenant after."""
        return self.update_tenant(slug, limits=limits)

    @operation("DELETE /admin/tenants/{slug}")
    def delete_tenant(self, slug: str) -> Any:
        return self._run(Call("DELETE", f"/admin/tenants/{_segment(slug)}"))

    @operation("GET /admin/tenants/{slug}/usage")
    def tenant_usage(self, slug: str) -> Any:
        return self._run(Call("GET", f"/admin/tenants/{_segment(slug)}/usage"))

    @operation("GET /admin/usage")
    def usage(self) -> Any:
        """Every tenant's days and hours summed."""
        return self._run(Call("GET", "/admin/usage"))

    @operation("POST /admin/tenants/{slug}/api-keys")
    def create_api_key(self, slug: str, *, name: Optional[str] = None) -> Any:
        """A new API key; its `key` is in this answer only."""
        body = {"name": name} if name is not None else {}
        return self._run(Call("POST", f"/admin/tenants/{_segment(slug)}/api-keys", json=body, repeatable=False))

    @operation("GET /admin/tenants/{slug}/api-keys")
    def api_keys(self, slug: str) -> Any:
        return self._run(Call("GET", f"/admin/tenants/{_segment(slug)}/api-keys", then=lambda a: a["api_keys"]))

    @operation("DELETE /admin/tenants/{slug}/api-keys/{id}")
    def revoke_api_key(self, slug: str, key_id: str) -> Any:
        return self._run(Call("DELETE", f"/admin/tenants/{_segment(slug)}/api-keys/{_segment(key_id)}"))

    @operation("POST /admin/tenants/{slug}/signing-keys")
    def create_signing_key(
        self, slug: str, *, alg: str = "HS256", public_key_pem: Optional[str] = None
    ) -> Any:
        """HS256: Herald makes the `secret` (in this answer only); ES256, EdDSA, RS256: give
        the public key."""
        body: Dict[str, Any] = {"alg": alg}
        if public_key_pem is not None:
            body["public_key_pem"] = public_key_pem
        path = f"/admin/tenants/{_segment(slug)}/signing-keys"
        return self._run(Call("POST", path, json=body, repeatable=False))

    @operation("GET /admin/tenants/{slug}/signing-keys")
    def signing_keys(self, slug: str) -> Any:
        path = f"/admin/tenants/{_segment(slug)}/signing-keys"
        return self._run(Call("GET", path, then=lambda a: a["signing_keys"]))

    @operation("DELETE /admin/tenants/{slug}/signing-keys/{kid}")
    def revoke_signing_key(self, slug: str, kid: str) -> Any:
        return self._run(Call("DELETE", f"/admin/tenants/{_segment(slug)}/signing-keys/{_segment(kid)}"))

    @operation("GET /admin/tenants/{slug}/webhooks")
    def tenant_webhooks(self, slug: str) -> Any:
        path = f"/admin/tenants/{_segment(slug)}/webhooks"
        return self._run(Call("GET", path, then=lambda a: a["webhooks"]))


def covered_operations(*classes: type) -> List[str]:
    """The API operations the methods of `classes` are marked with."""
    found: List[str] = []
    for cls in classes:
        for name in dir(cls):
            found.extend(getattr(getattr(cls, name), "__herald_operations__", ()))
    return found
