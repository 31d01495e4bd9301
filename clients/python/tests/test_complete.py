"""Complete by construction: every operation Herald's /openapi.json gives a tenant's
backend or the operator is covered by a method of the sync clients and of the async ones
(the `@operation` marks next to the methods are the map)."""

import httpx

from herald_client import AsyncHerald, AsyncHeraldOperator, Herald, HeraldOperator
from herald_client._api import covered_operations

BACKEND_TAGS = {"tenant backend", "operator"}


def test_every_backend_and_operator_operation_has_a_method(server) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if BACKEND_TAGS & set(operation.get("tags", []))
    }
    assert len(operations) > 30
    for clients in [(Herald, HeraldOperator), (AsyncHerald, AsyncHeraldOperator)]:
        covered = set(covered_operations(*clients))
        assert operations - covered == set(), f"{clients}: no method for these"
        assert covered - operations == set(), f"{clients}: methods for operations Herald lacks"
