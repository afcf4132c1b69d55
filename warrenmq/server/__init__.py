"""asyncio glue: listeners, connections, channels, and the node that wires them."""
