"""herald-client: Herald's server library for Python.

>>> from herald_client import Herald
>>> herald = Herald("https://herald.example.com", api_key)
>>> herald.publish({"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}})

`Herald` / `AsyncHerald` for a tenant's backend, `HeraldOperator` / `AsyncHeraldOperator` for
the operator, `mint_user_token` for users' pages, `verify_webhook` for Herald's webhook
messages, `HeraldError` for whatever Herald refused.
"""

from ._transport import Retries
from .client import AsyncHerald, AsyncHeraldOperator, Herald, HeraldOperator
from .errors import HeraldError, WebhookVerificationError
from .tokens import mint_user_token
from .webhooks import verify_webhook

__version__ = "0.1.0"

__all__ = [
    "AsyncHerald",
    "AsyncHeraldOperator",
    "Herald",
    "HeraldError",
    "HeraldOperator",
    "Retries",
    "WebhookVerificationError",
    "mint_user_token",
    "verify_webhook",
]
