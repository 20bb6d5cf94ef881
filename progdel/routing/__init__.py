"""Traffic routers: how a canary's weights reach the mesh."""
