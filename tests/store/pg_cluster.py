"""The throwaway PostgreSQL cluster the tests use: ivr/store/throwaway_pg.py (shared with
scripts/cluster)."""
from ivr.store.throwaway_pg import PgCluster, free_port, pg_bin

__all__ = ["PgCluster", "free_port", "pg_bin"]
