"""Protocol v1: envelope formats, derivations and canonical encodings.

Pure functions over bytes, shared by the server and the Python client. Nothing here
imports Flask or touches the database; docs/protocol.md is the normative text.
"""

PROTOCOL_VERSION = 1
