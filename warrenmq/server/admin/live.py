"""NodeAdmin's connections, channels and consumers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from warrenmq import admin
from warrenmq.server.admin.base import AdminBase, plain

if TYPE_CHECKING:
    from warrenmq.broker.consumer import Consumer
    from warrenmq.broker.queue import Queue
    from warrenmq.server.channel import Channel
    from warrenmq.server.connection import Connection


class LiveViews(AdminBase):
    """Connections, channels and consumers, as snapshots; closing a connection."""

    def _connection_info(self, conn: Connection) -> admin.ConnectionInfo:
        assert conn.vhost is not None and conn.user is not None
        props = plain(conn.client_properties)
        state = conn.state_name
        if state == "running" and conn.blocked:
            state = "blocked"
        elif state == "running" and getattr(conn, "alarm_pending", False):
            state = "blocking"  # an alarm is in force; blocked once it publishes
        transport = conn.transport
        pending = transport.get_write_buffer_size() if transport is not None else 0
        name = props.get("connection_name") if isinstance(props, dict) else None
        return admin.ConnectionInfo(
            name=conn.name,
            vhost=conn.vhost.name,
            user=conn.user.name,
            state=state,
            protocol="AMQP 0-9-1",
            auth_mechanism=conn.auth_mechanism,
            peer_host=conn.peer[0],
            peer_port=conn.peer[1],
            host=conn.local[0],
            port=conn.local[1],
            ssl=conn.tls,
            channels=len(conn.channels),
            channel_max=conn.channel_max,
            frame_max=conn.frame_max,
            timeout=conn.heartbeat,
            client_properties=props if isinstance(props, dict) else {},
            connected_at=int(self._epoch(conn.connected_at) * 1000),
            recv_oct=conn.recv_oct,
            send_oct=conn.send_oct,
            recv_cnt=conn.recv_cnt,
            send_cnt=conn.send_cnt,
            send_pend=pending,
            user_provided_name=str(name) if name is not None else None,
        )

    def _find_connection(self, name: str) -> Connection:
        for conn in self._open_connections():
            if conn.name == name:
                return conn
        raise admin.NotFound(f"no connection '{name}'")

    def connections(self, vhost: str | None = None) -> list[admin.ConnectionInfo]:
        return [
            self._connection_info(c)
            for c in self._open_connections()
            if vhost is None or (c.vhost is not None and c.vhost.name == vhost)
        ]

    def connection(self, name: str) -> admin.ConnectionInfo:
        return self._connection_info(self._find_connection(name))

    def close_connection(self, name: str, reason: str) -> None:
        self._find_connection(name).close(320, reason)

    def _channel_info(self, ch: Channel) -> admin.ChannelInfo:
        conn = ch.conn
        assert conn.user is not None
        stats = {
            "publish": ch.published,
            "deliver_get": ch.delivered,
            "ack": ch.acked,
            "confirm": ch.acked_upto,
        }
        return admin.ChannelInfo(
            name=f"{conn.name} ({ch.number})",
            number=ch.number,
            connection_name=conn.name,
            vhost=ch.vhost.name,
            user=conn.user.name,
            peer_host=conn.peer[0],
            peer_port=conn.peer[1],
            state="running" if ch.state == 0 else "closing",
            consumer_count=len(ch.consumers),
            messages_unacknowledged=len(ch.unacked),
            messages_unconfirmed=len(ch.unconfirmed),
            messages_uncommitted=len(ch.tx_publishes),
            acks_uncommitted=len(ch.tx_settles),
            prefetch_count=ch.prefetch_count,
            global_prefetch_count=ch.global_prefetch,
            confirm=ch.confirm,
            transactional=ch.tx,
            message_stats=stats,
        )

    def channels(self, vhost: str | None = None, connection: str | None = None) -> list[admin.ChannelInfo]:
        out = []
        for ch in self._all_channels():
            if vhost is not None and ch.vhost.name != vhost:
                continue
            if connection is not None and ch.conn.name != connection:
                continue
            out.append(self._channel_info(ch))
        return out

    def channel(self, name: str) -> admin.ChannelInfo:
        for ch in self._all_channels():
            if f"{ch.conn.name} ({ch.number})" == name:
                return self._channel_info(ch)
        raise admin.NotFound(f"no channel '{name}'")

    def _consumer_info(self, ch: Channel, consumer: Consumer, queue: Queue) -> admin.ConsumerInfo:
        conn = ch.conn
        assert conn.user is not None
        status = "up"
        active = True
        if queue.settings.single_active:
            active = queue.single_active is consumer
            status = "single_active" if active else "waiting"
        return admin.ConsumerInfo(
            consumer_tag=consumer.tag,
            queue=queue.name,
            vhost=ch.vhost.name,
            channel_name=f"{conn.name} ({ch.number})",
            channel_number=ch.number,
            connection_name=conn.name,
            peer_host=conn.peer[0],
            peer_port=conn.peer[1],
            user=conn.user.name,
            ack_required=not consumer.no_ack,
            exclusive=consumer.exclusive,
            prefetch_count=consumer.prefetch,
            arguments=plain(consumer.arguments),
            active=active,
            activity_status=status,
        )

    def consumers(self, vhost: str | None = None) -> list[admin.ConsumerInfo]:
        if vhost is not None:
            self._vhost(vhost)
        out = []
        for ch in self._all_channels():
            if vhost is not None and ch.vhost.name != vhost:
                continue
            for consumer in list(ch.consumers.values()):
                if consumer.queue is not None:  # not direct reply-to
                    out.append(self._consumer_info(ch, consumer, consumer.queue))
        return out
