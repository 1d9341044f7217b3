"""The distribution protocol without I/O: flags, node names, cookies, handshake, frames."""
