"""Cluster mode: several WarrenMQ nodes sharing definitions and queues, coordinated by etcd.

The layer sits beside the broker model, used by ``server/``; the model knows nothing of it.

- ``etcd.py``, ``keys.py``: the coordination store (definitions, membership, leaders).
- ``membership.py``: this node's lease, the other members, fencing when the lease may be gone.
- ``metadata.py``: definitions written to etcd and applied, from its watch, to the local model.
- ``wire.py``, ``link.py``: the node-to-node link (length-prefixed frames over TCP).
- ``remote_queue.py``, ``serving.py``: a queue led elsewhere, and the serving of such a
  queue's publishers and consumers on its leader.
- ``replication.py``, ``election.py``: quorum queues replicated to their members, and the
  takeover of a queue whose leader is gone.
- ``cluster.py``: the composition of the above that the node uses.
"""
