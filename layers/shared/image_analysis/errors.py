"""One error tree for everything that can go wrong with one object.

    AnalysisError                    code, message, retryable
    ├── InputRejected                the upload itself is bad: never retried, never sent to a vendor
    │                                (empty_object, not_an_image, truncated, too_large, too_many_pixels,
    │                                unsupported_format)
    ├── ObjectSkipped                the object is gone or was overwritten before it was read (object_gone)
    ├── ObjectUnreadable             readable never by this function (archived, SSE-C, KMS denied)
    └── ProviderError                a vendor answered badly; ``provider`` names it
        ├── AuthError                auth             no retry: fix the key in the secret
        ├── QuotaExhaustedError      quota_exhausted  no retry: top up or switch providers
        ├── BadImageError            bad_image        no retry: the vendor refuses this image
        ├── RateLimitedError         rate_limited     retry, honouring ``retry_after``
        ├── ProviderTimeoutError     timeout          retry
        ├── ServerError              server_error     retry (5xx, dropped connections)
        └── BadResponseError         bad_response     retry: a malformed body is usually a passing fault

``retryable`` says whether the same request can succeed later; the pipeline retries those within the
invocation's time and hands the record back to SQS when time runs out.
"""

from __future__ import annotations

from typing import ClassVar

from image_analysis.models import ErrorCode, ErrorInfo


class AnalysisError(Exception):
    code: ClassVar[ErrorCode]
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message)


class InputRejected(AnalysisError):
    """The upload is not an image we can analyze; the code says why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self._code = code

    @property  # type: ignore[override]
    def code(self) -> ErrorCode:
        return self._code


class ObjectSkipped(AnalysisError):
    code = "object_gone"


class ObjectUnreadable(AnalysisError):
    code = "object_unreadable"


class ProviderError(AnalysisError):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class AuthError(ProviderError):
    code = "auth"


class QuotaExhaustedError(ProviderError):
    code = "quota_exhausted"


class BadImageError(ProviderError):
    code = "bad_image"


class RateLimitedError(ProviderError):
    code = "rate_limited"
    retryable = True

    def __init__(self, provider: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class ProviderTimeoutError(ProviderError):
    code = "timeout"
    retryable = True


class ServerError(ProviderError):
    code = "server_error"
    retryable = True


class BadResponseError(ProviderError):
    code = "bad_response"
    retryable = True
