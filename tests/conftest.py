import os

from hypothesis import HealthCheck, settings

# Deadlines and the slow-generation check off: on a busy 2-core CI machine, timing is noise.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# `make fuzz`: long runs of the engine fuzz tests, 25,000 examples for each of its four
# properties (100,000 in all) unless CHUNKWISE_FUZZ_EXAMPLES says otherwise.
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("CHUNKWISE_FUZZ_EXAMPLES", "25000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# `make mutate`: each mutant runs the tests that reach it; fewer examples a property keep a
# full run within an hour on 2 cores (a mutant that survives them is looked at by hand).
settings.register_profile(
    "mutate", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("CHUNKWISE_HYPOTHESIS_PROFILE", "default"))

# Real chunkwise servers (in-process and as a subprocess) and clients for them.
from grpc_server import (  # noqa: E402, F401
    channel,
    conversation,
    grpc_server,
    server_factory,
    server_process,
    stub,
)
