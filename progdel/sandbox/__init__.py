"""The sandbox cluster: progdel's own local Kubernetes API server and its data plane."""
