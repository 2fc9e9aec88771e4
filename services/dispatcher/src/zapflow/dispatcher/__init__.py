"""Zapflow dispatcher (planned): will own campaigns, expanding audiences into send requests.

Today it starts, owns its schema and the campaign streams, and declares no consumer: nothing here
reads events yet.
"""
