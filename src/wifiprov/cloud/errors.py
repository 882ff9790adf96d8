"""Errors the cloud's services raise; the HTTP layer turns each into a status and a JSON message."""

import math


class CloudError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(CloudError):
    status = 422
    code = "invalid"


class Unauthorized(CloudError):
    status = 401
    code = "unauthorized"


class Forbidden(CloudError):
    status = 403
    code = "forbidden"


class NotFound(CloudError):
    status = 404
    code = "not_found"


class Conflict(CloudError):
    status = 409
    code = "conflict"


class TooLarge(CloudError):
    status = 413
    code = "too_large"


class Unavailable(CloudError):
    status = 503
    code = "unavailable"


class TooManyRequests(CloudError):
    """Refused for now: try again after ``retry_after`` seconds (sent as ``Retry-After``)."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        # Retry-After takes whole seconds; round up so a client that obeys it is not refused again.
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}
