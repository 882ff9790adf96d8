"""Errors the cloud's services raise; the HTTP layer turns each into a status and a JSON message."""


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
