"""Notifications and alerts from the controller's decisions: Alertmanager, webhook, Slack,
Microsoft Teams, email, PagerDuty, Opsgenie.

Nothing here can block or fail a reconcile: the listener only computes what to send and
puts it on bounded per-destination queues that background tasks deliver.
"""
