"""Data files the worker's enrichment reads (generated, committed; see build_mcc_mnc.py)."""
