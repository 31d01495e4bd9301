"""AsyncHerald: the same calls, awaited, and its iterators."""

import asyncio

from herald_client import AsyncHerald, AsyncHeraldOperator


def test_the_async_client_publishes_pages_and_reads(server, tenant) -> None:
    async def scenario() -> None:
        async with AsyncHerald(server.url, tenant.api_key) as herald:
            await herald.publish([{"to": {"user": "amy"}, "data": n} for n in range(250)])
            seen = [e["data"] async for e in herald.history("amy", page_size=100)]
            assert seen == list(range(250))
            assert (await herald.presence("amy"))["online"] is False
            assert (await herald.tenant())["slug"] == tenant.slug
        async with AsyncHeraldOperator(server.url, server.admin_token) as operator:
            slugs = [t["slug"] async for t in operator.tenants(page_size=2)]
            assert tenant.slug in slugs
            async with operator.as_tenant(tenant.slug) as acting:
                assert (await acting.usage())["published"]["today"] == 250

    asyncio.run(scenario())
