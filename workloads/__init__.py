"""The study's workloads: CNN and Transformer training and inference, LLM inference and serving,
and the sweeps that run them under ``greentop record``.

Every workload tags its phases and counts its work through greentop's public API only
(``greentop.phase``, ``greentop.mark``, ``greentop.count``), and, given ``--result PATH``, writes
what it did (its parameters and quality metrics) as one JSON document (see ``workloads.results``).
"""
