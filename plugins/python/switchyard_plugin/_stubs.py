"""Imports the generated gRPC stubs (switchyard_plugin/_gen, made by build.sh and shipped in the wheel).

The stubs use absolute imports (``from switchyard.v1 import record_pb2``), so
the _gen/ directory must be on ``sys.path``: this module appends it, both in
a checkout and in an installed package.
"""

import os
import sys

_GEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_gen")
if os.path.isdir(_GEN_DIR) and _GEN_DIR not in sys.path:
    sys.path.append(_GEN_DIR)

try:
    from plugin import (  # noqa: E402
        grpc_broker_pb2,
        grpc_broker_pb2_grpc,
        grpc_controller_pb2,
        grpc_controller_pb2_grpc,
        grpc_stdio_pb2,
        grpc_stdio_pb2_grpc,
    )
    from switchyard.v1 import (  # noqa: E402
        enrich_pb2,
        enrich_pb2_grpc,
        input_pb2,
        input_pb2_grpc,
        output_pb2,
        output_pb2_grpc,
        plugin_pb2,
        plugin_pb2_grpc,
        record_pb2,  # noqa: E402
    )
except ImportError as err:  # pragma: no cover - depends on the build
    raise ImportError(f"the Switchyard gRPC stubs are missing ({err}); run plugins/python/build.sh first") from err

__all__ = [
    "grpc_broker_pb2",
    "grpc_broker_pb2_grpc",
    "grpc_controller_pb2",
    "grpc_controller_pb2_grpc",
    "grpc_stdio_pb2",
    "grpc_stdio_pb2_grpc",
    "enrich_pb2",
    "enrich_pb2_grpc",
    "input_pb2",
    "input_pb2_grpc",
    "output_pb2",
    "output_pb2_grpc",
    "plugin_pb2",
    "plugin_pb2_grpc",
    "record_pb2",
]
