"""Message counters kept on the hot path as plain integer attributes.

Nothing here allocates or locks per message; rates are derived on a timer by whoever reads
the counters (the management layer samples them).
"""

from __future__ import annotations


class QueueStats:
    __slots__ = ("ack", "deliver", "deliver_no_ack", "expired", "get", "get_no_ack", "publish", "redeliver")

    def __init__(self) -> None:
        self.publish = 0
        self.deliver = 0
        self.deliver_no_ack = 0
        self.get = 0
        self.get_no_ack = 0
        self.ack = 0
        self.redeliver = 0
        self.expired = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class ExchangeStats:
    __slots__ = ("publish_in", "publish_out")

    def __init__(self) -> None:
        self.publish_in = 0
        self.publish_out = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}
