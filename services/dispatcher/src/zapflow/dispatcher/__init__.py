"""Campaigns: audience expansion, schedules, pause/resume/cancel, progress."""
