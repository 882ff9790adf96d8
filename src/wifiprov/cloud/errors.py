"""Errors the cloud's services raise; the HTTP layer turns each into a status and a JSON message."""

import math
from typing import Any


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


class NotDelivered(Conflict):
    """A command nothing keeps for later did not reach the device; ``delivery`` says why
    (``offline`` or ``refused``), as every delivery answer does."""

    def __init__(self, message: str, delivery: dict[str, Any]) -> None:
        super().__init__(message)
        self.delivery = delivery


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
