"""The fault soak: the whole stack with two replicas of each service, a workload, and crashes,
broker and database outages and AMC trouble while it runs; then the invariants.

    python -m bench.soak --minutes 10
"""
