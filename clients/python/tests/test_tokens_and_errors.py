"""User tokens minted with each algorithm, accepted by Herald's stream; Herald's refusals
as HeraldError; the operator's calls."""

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from herald_client import Herald, HeraldError, HeraldOperator, mint_user_token


def pem_pair(alg: str):
    key = {
        "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate,
        "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }[alg]()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def streams(server, slug: str, token: str) -> int:
    with httpx.stream("GET", f"{server.url}/t/{slug}/stream", headers={"Authorization": f"Bearer {token}"}) as answer:
        return answer.status_code


@pytest.mark.parametrize("alg", ["HS256", "ES256", "EdDSA", "RS256"])
def test_a_token_of_each_algorithm_opens_a_stream(server, operator: HeraldOperator, tenant, alg: str) -> None:
    if alg == "HS256":
        token = mint_user_token(kid=tenant.kid, secret=tenant.secret, sub="ada", topics=["news"], ttl=60)
    else:
        private, public = pem_pair(alg)
        key = operator.create_signing_key(tenant.slug, alg=alg, public_key_pem=public)
        token = mint_user_token(kid=key["kid"], private_key=private, alg=alg, sub="ada", topics=["news"], ttl=60)
    assert streams(server, tenant.slug, token) == 200
    expired = mint_user_token(kid=tenant.kid, secret=tenant.secret, sub="ada", now=1_000_000_000)
    assert streams(server, tenant.slug, expired) == 401


def test_refusals_carry_status_code_message_and_index(server, herald: Herald) -> None:
    with pytest.raises(HeraldError) as bad:
        herald.publish([{"to": {"user": "ok"}}, {"to": {"planet": "mars"}}])
    assert (bad.value.status, bad.value.code, bad.value.index) == (422, "invalid_target", 1)
    assert "to" in bad.value.message
    with pytest.raises(HeraldError) as missing:
        herald.webhook("wh_nothing")
    assert (missing.value.status, missing.value.code) == (404, "webhook_not_found")
    with Herald(server.url, "hk_not_a_key") as stranger:
        with pytest.raises(HeraldError) as refused:
            stranger.presence("u")
    assert (refused.value.status, refused.value.code) == (401, "invalid_api_key")
    with Herald("http://127.0.0.1:9", "hk_x", timeout=1) as nowhere:
        with pytest.raises(HeraldError) as unreachable:
            nowhere.tenant()
    assert unreachable.value.status is None and unreachable.value.code == "unreachable"


def test_the_operator_manages_tenants_keys_limits_and_usage(operator: HeraldOperator, server) -> None:
    operator.create_tenant("op-one", name="One", allowed_origins=["https://one.example"])
    operator.create_tenant("op-two")
    slugs = [t["slug"] for t in operator.tenants(page_size=1)]
    assert "op-one" in slugs and "op-two" in slugs and slugs == sorted(slugs)
    assert operator.set_limits("op-one", publish_per_sec=5)["limits"]["publish_per_sec"] == 5
    assert operator.update_tenant("op-one", name="Uno")["name"] == "Uno"
    key = operator.create_api_key("op-one", name="ci")
    assert [k["name"] for k in operator.api_keys("op-one")] == ["ci"]
    with operator.as_tenant("op-one") as acting:
        acting.publish({"to": {"user": "u"}, "data": 1})
    assert operator.tenant_usage("op-one")["published"]["today"] == 1
    assert operator.usage()["tenants"] >= 2
    signing = operator.create_signing_key("op-one")
    assert [k["kid"] for k in operator.signing_keys("op-one")] == [signing["kid"]]
    operator.revoke_signing_key("op-one", signing["kid"])
    operator.revoke_api_key("op-one", key["id"])
    with Herald(server.url, key["key"]) as revoked:
        with pytest.raises(HeraldError) as refused:
            revoked.tenant()
    assert refused.value.code == "invalid_api_key"
    assert operator.tenant_webhooks("op-one") == []
    assert operator.get_tenant("op-two")["slug"] == "op-two"
    operator.delete_tenant("op-one")
    operator.delete_tenant("op-two")
    with pytest.raises(HeraldError) as gone:
        operator.get_tenant("op-one")
    assert gone.value.code == "tenant_not_found"
