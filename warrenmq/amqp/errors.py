"""AMQP errors carrying their wire reply code.

A ChannelError (soft) closes one channel; a ConnectionError (hard) closes the connection.
The reply text follows RabbitMQ's shape: ``"NOT_FOUND - no queue 'q' in vhost '/'"``.
``class_id``/``method_id`` name the method that failed; the channel fills them in when the
raising code did not know them.
"""

from __future__ import annotations

REPLY_NAMES: dict[int, str] = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}


class AMQPError(Exception):
    """An error with an AMQP reply code; ``str()`` is the reply text."""

    reply_code = 541
    hard = True
    silent = False  # closes the socket without a connection.close (RabbitMQ's reader crashing)
    detail = ""  # for the log only: what exactly was wrong with the client's bytes

    def __init__(self, explanation: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(explanation)
        self.explanation = explanation
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        text = f"{REPLY_NAMES.get(self.reply_code, 'ERROR')} - {self.explanation}"
        # A client's bytes quoted in the text (kept by surrogateescape) go back as they came.
        raw = text.encode("utf-8", "surrogateescape")
        return text if len(raw) <= 255 else raw[:255].decode(errors="ignore")


class ChannelError(AMQPError):
    hard = False


class ConnectionError(AMQPError):
    hard = True


# One class per reply code, so that callers raise by meaning: ``raise NotFound("no queue ...")``.


class ContentTooLarge(ChannelError):
    reply_code = 311


class AccessRefused(ChannelError):
    reply_code = 403


class NotFound(ChannelError):
    reply_code = 404


class ResourceLocked(ChannelError):
    reply_code = 405


class PreconditionFailed(ChannelError):
    reply_code = 406


class ConnectionForced(ConnectionError):
    reply_code = 320


class InvalidPath(ConnectionError):
    reply_code = 402


class AccessRefusedConnection(ConnectionError):
    reply_code = 403


class FrameError(ConnectionError):
    reply_code = 501


class SyntaxErrorAMQP(ConnectionError):
    reply_code = 502


class CommandInvalid(ConnectionError):
    reply_code = 503


class ChannelErrorConnection(ConnectionError):
    reply_code = 504


class UnexpectedFrame(ConnectionError):
    reply_code = 505


class ResourceError(ConnectionError):
    reply_code = 506


class NotAllowed(ConnectionError):
    reply_code = 530


class NotImplementedAMQP(ConnectionError):
    reply_code = 540


class InternalError(ConnectionError):
    reply_code = 541


class ParserCrash(InternalError):
    """RabbitMQ's answer when its parser crashes on a client's bytes in a channel: 541 with no
    detail.  ``detail`` says for the log what did not parse (the client is told nothing)."""

    @property
    def reply_text(self) -> str:
        return "INTERNAL_ERROR"


class ReaderCrash(InternalError):
    """RabbitMQ's answer to a method whose arguments fit its frame but hold a field table its
    parser does not take: the connection's reader process crashes, and the socket is closed
    without a connection.close.  ``detail`` says for the log what did not parse."""

    silent = True

    def __init__(self, detail: str) -> None:
        super().__init__("INTERNAL_ERROR")
        self.detail = detail


_CHANNEL_ERRORS: dict[int, type[AMQPError]] = {
    cls.reply_code: cls for cls in (ContentTooLarge, AccessRefused, NotFound, ResourceLocked, PreconditionFailed)
}
_CONNECTION_ERRORS: dict[int, type[AMQPError]] = {
    cls.reply_code: cls
    for cls in (
        ConnectionForced,
        InvalidPath,
        FrameError,
        SyntaxErrorAMQP,
        CommandInvalid,
        ChannelErrorConnection,
        UnexpectedFrame,
        ResourceError,
        NotAllowed,
        NotImplementedAMQP,
        InternalError,
    )
}


def error_for(reply_code: int, explanation: str) -> AMQPError:
    """The error a reply code stands for (an error another node reported, say); a code that
    is a channel error in one place and a connection error in another (403) is the former."""
    cls = _CHANNEL_ERRORS.get(reply_code) or _CONNECTION_ERRORS.get(reply_code, InternalError)
    return cls(explanation)
