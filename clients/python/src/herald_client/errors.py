"""The one error type: what Herald answered (its status, code, message and, for a batch,
the index of the event at fault), or that it could not be reached."""

from __future__ import annotations

from typing import Any, Optional


class HeraldError(Exception):
    """An answer Herald gave with an error status, or none at all (`status` None, `code`
    `unreachable` or `timeout`)."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        index: Optional[int] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.index = index
        #: Seconds Herald asked the caller to wait (`Retry-After`), when it said.
        self.retry_after = retry_after

    @classmethod
    def from_answer(cls, status: int, body: Any, retry_after: Optional[float]) -> "HeraldError":
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return cls(
            status,
            str(error.get("code") or f"http_{status}"),
            str(error.get("message") or f"Herald answered {status}"),
            error.get("index"),
            retry_after,
        )


class WebhookVerificationError(Exception):
    """A webhook message that is not Herald's: a wrong or missing signature, or a timestamp
    outside the tolerance."""
