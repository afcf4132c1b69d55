"""The broker model: vhosts, exchanges, queues, consumers.  Pure Python, no I/O."""
