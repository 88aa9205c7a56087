"""Code that runs inside the vLLM server process (standard library only).

`lf-wrap serve` puts this folder itself on the server's PYTHONPATH, so its modules are
imported there by their bare names (`lf_wrap_auth`), without lf-wrap installed.
"""
